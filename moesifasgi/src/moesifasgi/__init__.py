"""moesifasgi: Moesif API monitoring for ASGI apps (FastAPI, Starlette, and any ASGI app).

from moesifasgi import MoesifMiddleware
app.add_middleware(MoesifMiddleware, settings={"APPLICATION_ID": "your application id"})
"""

from __future__ import annotations

from .callbacks import run_in_thread
from .middleware import MoesifMiddleware
from .objects import CallbackResponse
from .version import __version__

__all__ = ["CallbackResponse", "MoesifMiddleware", "__version__", "run_in_thread"]
