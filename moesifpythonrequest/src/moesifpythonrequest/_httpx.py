"""Capture for ``httpx``: wrappers on ``httpx.Client.send`` and ``httpx.AsyncClient.send``.

Every httpx call goes through ``send`` (``httpx.get``, ``client.get``, ``client.stream`` and ``build_request`` +
``send`` alike). httpx follows redirects and auth challenges inside one ``send`` and leaves the earlier exchanges
in ``response.history`` (already read), so each exchange is recorded from there: one event per HTTP exchange, as
with ``requests``. The callbacks get ``httpx.Request`` and ``httpx.Response``.

Streamed responses (``stream=True``, ``client.stream(...)``) are teed through ``Response.iter_bytes`` /
``aiter_bytes`` (which ``read``, ``aread``, ``iter_text`` and ``iter_lines`` use); ``iter_raw`` read directly is
not seen. The event is queued when the body ends, the response is closed, or it is garbage-collected.

This module imports httpx; it is imported only when capture starts and httpx is installed.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable, List, Optional, cast

import httpx

from moesif_core import BodyTap, RawCapture, call_user
from moesif_core.capture import HeaderPairs

from . import _state
from ._patch import Patch
from ._state import Active, PendingEvent, atee, make_close, stream_of, tee, track_stream

Func = Callable[..., Any]

logger = logging.getLogger("moesif")


def is_internal(request: httpx.Request) -> bool:
    if str(request.url).startswith(_state.INTERNAL_PREFIXES):
        return True
    headers = request.headers
    return any(name in headers for name in _state.INTERNAL_HEADERS)


def _make_send(original: Func) -> Func:
    @functools.wraps(original)
    def send(self: httpx.Client, request: httpx.Request, *args: Any, **kwargs: Any) -> Any:
        active = _state.ACTIVE
        if active is None or _state.internal_or_unreadable(is_internal, request):
            return original(self, request, *args, **kwargs)
        started = time.time()
        response = original(self, request, *args, **kwargs)  # errors (timeouts, refused) carry no response
        record_all(active, response, started)
        return response

    return send


def _make_async_send(original: Func) -> Func:
    @functools.wraps(original)
    async def send(self: httpx.AsyncClient, request: httpx.Request, *args: Any, **kwargs: Any) -> Any:
        active = _state.ACTIVE
        if active is None or _state.internal_or_unreadable(is_internal, request):
            return await original(self, request, *args, **kwargs)
        started = time.time()
        response = await original(self, request, *args, **kwargs)
        record_all(active, response, started)
        return response

    return send


def record_all(active: Active, response: httpx.Response, started: float) -> None:
    """Record the exchanges in ``response.history``, then ``response``. Never raises."""
    try:
        now = time.time()
        for old in response.history:
            try:
                end = started + old.elapsed.total_seconds()
            except RuntimeError:  # elapsed exists once a response is closed (history responses are)
                end = now
            record(active, old, started, end)
        record(active, response, started, now)
    except Exception:
        logger.warning("moesif: error while capturing an outgoing call; the call is not affected", exc_info=True)


def _request_body(req: httpx.Request, limit: int) -> Optional[BodyTap]:
    try:
        content = req.content
    except httpx.RequestNotRead:  # a streamed upload (generator, file): not read here
        return None
    return _state.request_tap(content, limit)


def record(active: Active, resp: httpx.Response, request_time: float, response_time: float) -> None:
    req = resp.request
    if active.skip is not None and call_user(active.skip, "SKIP_OUTGOING", req, resp):
        return
    raw = RawCapture(
        direction="Outgoing",
        method=req.method,
        uri=str(req.url),
        request_time=request_time,
        request_headers=cast(HeaderPairs, req.headers.raw),  # bytes pairs: the worker decodes them
        response_status=resp.status_code,
        response_headers=cast(HeaderPairs, resp.headers.raw),
        log_body=active.log_body,
    )
    active.identify(raw, req, resp)
    agent = active.agent
    if active.log_body:
        raw.request_body = _request_body(req, active.max_body)
        try:
            content: Optional[bytes] = resp.content
        except httpx.ResponseNotRead:
            content = None
            if not raw.head:  # streamed and unread: captured as the caller reads it
                tap = BodyTap(active.max_body)
                raw.response_body = tap
                track_stream(resp, PendingEvent(agent, raw, tap))
                return
        if content:
            tap = BodyTap(active.max_body)
            tap.feed(content)
            raw.response_body = tap
    raw.response_time = response_time
    agent.capture(raw)


def _make_iter_bytes(original: Func) -> Func:
    @functools.wraps(original)
    def iter_bytes(self: httpx.Response, chunk_size: Optional[int] = None) -> Any:
        pending = stream_of(self)
        if pending is None or "_content" in vars(self):  # not ours, or read already (replayed from memory)
            return original(self, chunk_size)
        return tee(original(self, chunk_size), pending)

    return iter_bytes


def _make_aiter_bytes(original: Func) -> Func:
    @functools.wraps(original)
    def aiter_bytes(self: httpx.Response, chunk_size: Optional[int] = None) -> Any:
        pending = stream_of(self)
        if pending is None or "_content" in vars(self):
            return original(self, chunk_size)
        return atee(original(self, chunk_size), pending)

    return aiter_bytes


def _make_aclose(original: Func) -> Func:
    @functools.wraps(original)
    async def aclose(self: httpx.Response) -> Any:
        try:
            return await original(self)
        finally:
            pending = stream_of(self)
            if pending is not None:
                pending.close()

    return aclose


PATCHES: List[Patch] = [
    Patch(httpx.Client, "send", _make_send),
    Patch(httpx.AsyncClient, "send", _make_async_send),
    Patch(httpx.Response, "iter_bytes", _make_iter_bytes),
    Patch(httpx.Response, "aiter_bytes", _make_aiter_bytes),
    Patch(httpx.Response, "close", make_close),
    Patch(httpx.Response, "aclose", _make_aclose),
]
