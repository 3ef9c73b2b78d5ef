"""moesifwsgi: drop-in compatible Moesif middleware for WSGI apps (Flask, Bottle, Pyramid, any WSGI app).

::

    from moesifwsgi import MoesifMiddleware

    app.wsgi_app = MoesifMiddleware(app.wsgi_app, {"APPLICATION_ID": "your application id"})
"""

from __future__ import annotations

from moesif_core import EventModel, EventRequestModel, EventResponseModel, MoesifAPIClient

from .middleware import MoesifMiddleware
from .version import __version__

__all__ = [
    "EventModel",
    "EventRequestModel",
    "EventResponseModel",
    "MoesifAPIClient",
    "MoesifMiddleware",
    "__version__",
]
