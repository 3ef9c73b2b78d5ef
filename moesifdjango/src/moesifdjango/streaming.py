"""``StreamingHttpResponse`` and ``FileResponse``: the content streams as the app made it, the first
``MAX_BODY_SIZE`` bytes are kept as they pass, and the event goes out when the stream ends or is closed.

With ``LOG_BODY`` on, ``streaming_content`` is replaced by a generator over the original one (sync or async, as the
app's was) that feeds a :class:`~moesif_core.BodyTap`. A ``FileResponse`` is then iterated by the server instead of
being handed to ``wsgi.file_wrapper``: same bytes and headers, no ``sendfile``. With ``LOG_BODY`` off the response
is not touched at all; the event is sent when Django closes the response.

A streaming response dropped without ``close()`` and before its end (Django's test client when the test only looks
at the status; a server that forgets to close) still records its call, once: when the :class:`Finisher` is
collected, its ``__del__`` hands it to the agent, which runs it in a worker thread. Neither that ``__del__`` nor the
tee's generator, when it is collected half-read, sends anything itself: code run by the garbage collector may run
in any thread at any point, even one holding the queue's lock.
"""

from __future__ import annotations

import time
from typing import Any, AsyncIterator, Callable, Iterator, Optional

from django.http.response import HttpResponseBase, StreamingHttpResponse

from moesif_core import Agent, BodyTap, RawCapture, capture_internal_exceptions

from .requestinfo import seal_request_body


class Finisher:
    """Sends the event once, at the first of: the stream's end, its close, the response's close."""

    __slots__ = ("agent", "raw", "declared", "done")

    def __init__(self, agent: Agent, raw: RawCapture, declared: Optional[int]) -> None:
        self.agent = agent
        self.raw = raw
        self.declared = declared
        self.done = False

    def __del__(self) -> None:
        try:
            if not self.done:
                self.agent.defer(self)  # run later by a worker; keeps us alive until then
        except Exception:  # noqa: BLE001 - no logging in __del__ (its locks); at exit the modules may be gone
            pass

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        with capture_internal_exceptions("sending a streamed response's event"):
            raw = self.raw
            raw.response_time = time.time()
            seal_request_body(raw.request_body, self.declared)
            self.agent.capture(raw)


def _tee(content: Iterator[bytes], tap: BodyTap, finish: Callable[[], None]) -> Iterator[bytes]:
    # Not ``finally``: closed early (GeneratorExit), the response's close() or the Finisher's collection ends the
    # call, never this generator's own finalisation, which may run inside the garbage collector.
    try:
        for chunk in content:
            tap.feed(chunk)
            yield chunk
    except Exception:
        finish()
        raise
    finish()


async def _atee(content: AsyncIterator[bytes], tap: BodyTap, finish: Callable[[], None]) -> AsyncIterator[bytes]:
    try:
        async for chunk in content:
            tap.feed(chunk)
            yield chunk
    finally:
        finish()


def attach(response: HttpResponseBase, finish: Finisher, body_limit: Optional[int]) -> None:
    """Arrange for ``finish`` to run when ``response`` has been sent; tee its body when ``body_limit`` is set."""
    closers: Any = getattr(response, "_resource_closers", None)
    if body_limit is not None and isinstance(response, StreamingHttpResponse):  # FileResponse included
        tap = BodyTap(body_limit)
        finish.raw.response_body = tap
        content: Any = response.streaming_content
        if getattr(response, "is_async", False):
            response.streaming_content = _atee(content, tap, finish)
        else:
            response.streaming_content = _tee(content, tap, finish)
    else:
        body_limit = None
    if isinstance(closers, list):
        closers.append(finish)  # a stream never iterated, or an async one abandoned: Django still closes it
    elif body_limit is None:
        finish()  # no way to see the end: send now, without the stream's duration
