"""The settings defaults of moesifwsgi and how its callbacks are called.

Defaults are those of the original moesifwsgi 1.10.5 (its README and its code agree on them); every other key and
its validation come from :class:`moesif_core.Settings`.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from moesif_core import Settings, call_user
from moesif_core.callbacks import field_callbacks as core_field_callbacks

logger = logging.getLogger("moesif")

#: Where the user wrote the settings, for error messages.
WHERE = "the MoesifMiddleware settings"

#: The original's defaults that differ from the core's.
WSGI_DEFAULTS: Mapping[str, Any] = {
    "BATCH_SIZE": 100,
    "EVENT_BATCH_TIMEOUT": 2,
    "EVENT_WORKER_COUNT": 2,
    "EVENT_QUEUE_SIZE": 1_000_000,
}

#: A callback slower than this (seconds) is logged, at most once a minute per callback.
SLOW_CALLBACK_SECONDS = 0.1
_SLOW_LOG_INTERVAL = 60.0


def build_settings(settings: Optional[Mapping[str, Any]]) -> Settings:
    """Validate the user's dict with moesifwsgi's defaults; raises ``ValueError``/``TypeError`` naming the key."""
    return Settings.from_mapping(settings, where=WHERE, defaults=WSGI_DEFAULTS)


def positional_arity(fn: Callable[..., Any]) -> Optional[int]:
    """How many positional arguments ``fn`` accepts; ``None`` when unlimited or unknown."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    n = 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


class Callback:
    """One of the user's ``(app, environ[, response_headers])`` callbacks, with its name for log messages.

    ``IDENTIFY_USER`` and ``IDENTIFY_COMPANY`` are documented as ``(app, environ, response_headers=dict())`` in the
    README and as ``(app, environ)`` in the integration guide; both forms work: the headers are passed only to a
    function that can take a third positional argument.
    """

    __slots__ = ("fn", "name", "with_headers", "_last_slow_log")

    def __init__(self, fn: Callable[..., Any], name: str, headers_arg: bool = False) -> None:
        self.fn = fn
        self.name = name
        arity = positional_arity(fn)
        self.with_headers = headers_arg and (arity is None or arity >= 3)
        self._last_slow_log = -_SLOW_LOG_INTERVAL

    def __call__(self, app: Any, environ: Dict[str, Any], response_headers: Dict[str, str]) -> Any:
        start = time.perf_counter()
        if self.with_headers:
            result = call_user(self.fn, self.name, app, environ, response_headers)
        else:
            result = call_user(self.fn, self.name, app, environ)
        elapsed = time.perf_counter() - start
        if elapsed > SLOW_CALLBACK_SECONDS:
            now = time.monotonic()
            if now - self._last_slow_log >= _SLOW_LOG_INTERVAL:
                self._last_slow_log = now
                logger.warning(
                    "moesif: the %s callback took %.0f ms; it runs on the request thread at the end of each "
                    "response, so keep it fast (this message repeats at most once a minute)",
                    self.name,
                    elapsed * 1000,
                )
        return result


def callback(fn: Optional[Callable[..., Any]], name: str, headers_arg: bool = False) -> Optional[Callback]:
    return Callback(fn, name, headers_arg) if fn is not None else None


#: The callbacks that also take the response headers (``(app, environ, response_headers)``) when they can.
_HEADERS_ARG = ("IDENTIFY_USER", "IDENTIFY_COMPANY")


def field_callbacks(settings: Settings) -> List[Tuple[str, Callback]]:
    """``(RawCapture attribute, callback)`` for each field callback the settings set, in the core's order."""
    return [(field, Callback(fn, name, name in _HEADERS_ARG)) for name, field, fn in core_field_callbacks(settings)]
