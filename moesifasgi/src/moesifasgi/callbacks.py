"""Calling the user's callbacks (``SKIP``, ``IDENTIFY_USER``, ...) from the event loop.

Each callback may be a plain function or an ``async def``, as in the original:

- ``async def`` callbacks (and callables whose result is awaitable) are awaited.
- Plain functions are called inline: a thread hop costs 90 to 200 microseconds here, a fast callback about one
  (four inline callbacks add ~12 us to a request, four ``async def`` ones ~24 us, four in threads ~270 us even in
  one hop). Each inline call is timed; one that takes longer than :data:`~moesifasgi.options.SLOW_SYNC_CALLBACK`
  (it blocked: a database lookup, an HTTP call) is logged once and from then on run in a worker thread, so it stops
  stalling the loop. A plain function decorated with :func:`run_in_thread` runs in a worker thread from its first
  call, for callbacks known to block. Several callbacks due in threads share one hop.
- A callback that raises is logged with its setting's name and the event goes on without that field, as
  :func:`moesif_core.call_user` does for the other adapters.

Threads come from anyio (which Starlette runs on), so this works under asyncio and trio, and the callback sees the
request's context variables.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import anyio.to_thread

from moesif_core import CALLBACK_FAILED

from .options import SLOW_SYNC_CALLBACK

logger = logging.getLogger("moesif")

F = TypeVar("F", bound=Callable[..., Any])

_THREAD_MARK = "__moesif_run_in_thread__"


def run_in_thread(fn: F) -> F:
    """Mark a plain-function callback that blocks, so that it always runs in a worker thread::

    @run_in_thread
    def identify_user(request, response):
        return db.lookup(request.headers["x-api-key"])  # blocking I/O
    """
    setattr(fn, _THREAD_MARK, True)
    return fn


def is_async_callable(fn: Any) -> bool:
    """``async def`` functions, partials of them, and objects whose ``__call__`` is ``async def``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


class UserCallback:
    """One of the user's callbacks, with how it is to be called."""

    __slots__ = ("fn", "name", "is_async", "in_thread")

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        #: the setting's name (``IDENTIFY_USER``), for log messages
        self.name = name
        self.is_async = is_async_callable(fn)
        self.in_thread = not self.is_async and bool(getattr(fn, _THREAD_MARK, False))

    @classmethod
    def of(cls, fn: Optional[Callable[..., Any]], name: str) -> Optional[UserCallback]:
        return None if fn is None else cls(fn, name)

    async def __call__(self, *args: Any) -> Any:
        """The callback's result; ``None`` if it raised (logged)."""
        try:
            if self.is_async:
                result = await self.fn(*args)
            elif self.in_thread:
                result = await anyio.to_thread.run_sync(self.fn, *args)
            else:
                start = time.perf_counter()
                result = self.fn(*args)
                elapsed = time.perf_counter() - start
                if elapsed > SLOW_SYNC_CALLBACK:
                    self.in_thread = True
                    logger.warning(
                        "moesif: the %s callback took %.1f ms on the event loop; it now runs in a worker thread. "
                        "Make it `async def`, or decorate it with moesifasgi.run_in_thread, to avoid even this "
                        "first stall.",
                        self.name,
                        elapsed * 1000,
                    )
            if inspect.isawaitable(result):
                result = await result
            return result
        except Exception:
            logger.warning(CALLBACK_FAILED, self.name, exc_info=True)
            return None

    def call_sync(self, *args: Any) -> Any:
        """Call a plain-function callback here (in a worker thread); its result, or ``None`` if it raised."""
        try:
            return self.fn(*args)
        except Exception:
            logger.warning(CALLBACK_FAILED, self.name, exc_info=True)
            return None

    def call_now(self, *args: Any) -> tuple[bool, Any]:
        """Call without awaiting (the request was cancelled: awaiting is no longer possible).

        ``(False, None)`` when the callback needs awaiting or a thread; ``(True, result)`` otherwise.
        """
        if self.is_async or self.in_thread:
            return False, None
        try:
            result = self.fn(*args)
        except Exception:
            logger.warning(CALLBACK_FAILED, self.name, exc_info=True)
            return True, None
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if callable(close):
                close()  # a coroutine we cannot await: close it so Python does not warn it was never awaited
            return False, None
        return True, result


def call_all_sync(callbacks: List[Tuple[str, UserCallback]], *args: Any) -> Dict[str, Any]:
    """Several plain-function callbacks in one go, for one thread hop instead of one each."""
    return {field: cb.call_sync(*args) for field, cb in callbacks}
