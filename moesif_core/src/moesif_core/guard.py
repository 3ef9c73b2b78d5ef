"""One small guard used everywhere so that no SDK or user-callback error ever reaches the host app.

Every place where the SDK runs on the app's request path goes through :func:`capture_internal_exceptions` or
:func:`call_user`; an exception is logged on the ``moesif`` logger (with its traceback at debug level) and the
request goes on.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

logger = logging.getLogger("moesif")


@contextmanager
def capture_internal_exceptions(what: str = "capturing the event") -> Iterator[None]:
    """Swallow and log any exception raised inside the block."""
    try:
        yield
    except Exception:
        logger.warning("moesif: error while %s; the request is not affected", what, exc_info=True)


def call_user(fn: Optional[Callable[..., Any]], name: str, *args: Any) -> Any:
    """Call a user callback (``IDENTIFY_USER`` and friends); ``None`` if it is unset or raises.

    A raising callback is logged with the setting's name so the user knows which one to fix; the event goes on
    without that field.
    """
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:
        logger.warning("moesif: the %s callback raised; the event is sent without it", name, exc_info=True)
        return None
