"""moesiftornado: Moesif API analytics for Tornado, drop-in compatible with the original ``moesiftornado``.

::

    from moesiftornado import MoesifMiddleware

    middleware = MoesifMiddleware({"APPLICATION_ID": "your application id"})
    application = tornado.web.Application(handlers, log_function=middleware.log_event)

See :mod:`moesiftornado.middleware` for how requests and responses are captured.
"""

from moesif_core import MoesifAPIClient

from .middleware import MoesifMiddleware
from .version import __version__

__all__ = ["MoesifAPIClient", "MoesifMiddleware", "__version__"]
