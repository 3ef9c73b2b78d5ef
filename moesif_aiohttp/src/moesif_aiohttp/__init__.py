"""moesif_aiohttp: Moesif API monitoring for aiohttp web apps, drop-in compatible with the original
``moesif-aiohttp``::

    from aiohttp import web
    from moesif_aiohttp import MoesifMiddleware

    app = web.Application(middlewares=[MoesifMiddleware({"APPLICATION_ID": "your application id"})])

See :mod:`moesif_aiohttp.middleware` for how requests and responses are captured.
"""

from moesif_core import MoesifAPIClient

from .middleware import MoesifMiddleware
from .version import __version__

__all__ = ["MoesifAPIClient", "MoesifMiddleware", "__version__"]
