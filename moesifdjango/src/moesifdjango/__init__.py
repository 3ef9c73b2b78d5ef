"""moesifdjango: Moesif API monitoring for Django, drop-in compatible with the original package.

``MIDDLEWARE = [..., 'moesifdjango.middleware.moesif_middleware']`` (Django 1.10+) or
``MIDDLEWARE_CLASSES = [..., 'moesifdjango.middleware_pre19.MoesifMiddlewarePre19']`` (Django 1.9 and older), and a
``MOESIF_MIDDLEWARE = {'APPLICATION_ID': ...}`` dict in the settings.

Importing this package does not import Django (names below are loaded on first use), so tools that inspect an
installed package work without the framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .config import MoesifSettingsError, flush, shutdown, wait_for_config
    from .middleware import MoesifMiddleware, moesif_middleware

__all__ = [
    "MoesifMiddleware",
    "MoesifSettingsError",
    "__version__",
    "flush",
    "moesif_middleware",
    "shutdown",
    "wait_for_config",
]

_LAZY = {
    "MoesifMiddleware": "middleware",
    "moesif_middleware": "middleware",
    "MoesifSettingsError": "config",
    "flush": "config",
    "shutdown": "config",
    "wait_for_config": "config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
