"""The user's callbacks that fill one event field each: which setting fills which field, in the order called.

Every adapter calls them its own way (WSGI with ``(app, environ[, headers])``, ASGI and Django with
``(request, response)``, Tornado with the handler; sync or awaited), but from this one table.
"""

from __future__ import annotations

from typing import Any, Callable, List, Tuple

from .settings import Settings

#: ``(setting name, Settings attribute, RawCapture attribute)``, in the order the callbacks are called.
FIELD_CALLBACKS: Tuple[Tuple[str, str, str], ...] = (
    ("IDENTIFY_USER", "identify_user", "user_id"),
    ("IDENTIFY_COMPANY", "identify_company", "company_id"),
    ("GET_SESSION_TOKEN", "get_session_token", "session_token"),
    ("GET_METADATA", "get_metadata", "metadata"),
    ("GET_API_VERSION", "get_api_version", "api_version"),
)


def field_callbacks(settings: Settings) -> List[Tuple[str, str, Callable[..., Any]]]:
    """The callbacks ``settings`` sets, in order: ``(setting name, RawCapture attribute, function)``."""
    out: List[Tuple[str, str, Callable[..., Any]]] = []
    for name, attr, field in FIELD_CALLBACKS:
        fn = getattr(settings, attr)
        if fn is not None:
            out.append((name, field, fn))
    return out
