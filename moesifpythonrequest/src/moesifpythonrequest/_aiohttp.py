"""Capture for ``aiohttp``'s client: a wrapper on ``aiohttp.ClientSession._request``.

Every request of a ``ClientSession`` goes through ``_request`` (``session.get``, ``session.request``,
``aiohttp.request``; it returns once the response headers are in). One event per exchange: the final response,
and each redirect hop kept in ``response.history`` (without body: aiohttp has read and released it). A websocket
handshake (``ws_connect``, status 101) is not an API call and is not recorded. The callbacks get the response's
``RequestInfo`` (the method, URL and headers that were sent) and the ``ClientResponse``.

Bodies:

- The request body is the ``json=`` value (serialised as the session does) or a ``data=`` given as bytes or text, up
  to ``MAX_BODY_SIZE``; a form, a file or a generator is the caller's stream and is not read.
- The response body is teed as the caller reads it, however it does (``read()``, ``json()``, ``text()``,
  ``content.iter_chunked()``, ``content.readline()``): the class of that response's own ``content`` stream is
  switched to a subclass of aiohttp's ``StreamReader`` that adds nothing but a copy of each chunk handed out (at most
  ``MAX_BODY_SIZE`` kept). The event is queued when the body has been read to its end, when the response is
  released or closed (``async with`` does it), or when it is garbage-collected.

This module imports aiohttp; it is imported only when capture starts and aiohttp is installed.
"""

from __future__ import annotations

import functools
import json as _json
import logging
import time
import weakref
from typing import Any, Callable, Dict, List, Optional

import aiohttp
from aiohttp.streams import StreamReader

from moesif_core import BodyTap, RawCapture, call_user

from . import _state
from ._patch import Patch
from ._state import Active, PendingEvent, request_tap, stream_of

Func = Callable[..., Any]

logger = logging.getLogger("moesif")

#: Response streams being read, to their call's pending event, by ``id()`` of the stream (a ``StreamReader`` has
#: ``__slots__``: no attribute of ours, no weak reference); an entry goes when its event is queued.
_READING: Dict[int, PendingEvent] = {}


class _TeeReader(StreamReader):
    """aiohttp's ``StreamReader`` that also copies every chunk it hands out into its call's tap and ends the event
    at the end of the body. It adds no state, so one response's stream may have its class switched to it."""

    __slots__ = ()

    def _read_nowait_chunk(self, n: int) -> bytes:
        data = super()._read_nowait_chunk(n)
        pending = _READING.get(id(self))
        if pending is not None:
            if data:
                pending.tap.feed(data)
            if self._eof and not self._buffer:  # the caller has the whole body
                _finish(self)
        return data


def _finish(stream: Any) -> None:
    _finish_key(id(stream))


def _finish_key(key: int) -> None:
    pending = _READING.pop(key, None)
    if pending is not None:
        pending.finish()


def is_internal(info: aiohttp.RequestInfo) -> bool:
    """The SDK's own call: to a ``BASE_URI`` capture knows, or carrying a Moesif SDK header."""
    if str(info.real_url).startswith(_state.INTERNAL_PREFIXES):
        return True
    headers = info.headers
    return any(name in headers for name in _state.INTERNAL_HEADERS)


def _request_body(session: aiohttp.ClientSession, kwargs: Dict[str, Any], limit: int) -> Optional[BodyTap]:
    value = kwargs.get("json")
    if value is not None:
        serialize: Callable[[Any], str] = getattr(session, "_json_serialize", _json.dumps)
        return request_tap(serialize(value), limit)
    return request_tap(kwargs.get("data"), limit)


def _make_request(original: Func) -> Func:
    @functools.wraps(original)
    async def _request(self: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any) -> Any:
        active = _state.ACTIVE
        if active is None:
            return await original(self, method, url, **kwargs)
        started = time.time()
        response = await original(self, method, url, **kwargs)  # errors (refused, timeouts) carry no response
        try:
            if response.status != 101 and not _state.internal_or_unreadable(is_internal, response.request_info):
                record_all(active, self, response, kwargs, started)
        except Exception:
            logger.warning("moesif: error while capturing an outgoing call; the call is not affected", exc_info=True)
        return response

    return _request


def record_all(
    active: Active, session: aiohttp.ClientSession, resp: aiohttp.ClientResponse, kwargs: Dict[str, Any], started: float
) -> None:
    now = time.time()
    for old in resp.history:  # redirect hops: read and released by aiohttp already
        raw = _raw(active, old, started)
        if raw is not None:
            raw.response_time = now
            active.agent.capture(raw)
    raw = _raw(active, resp, started)
    if raw is None:
        return
    if active.log_body:
        if not resp.history:  # the body given was sent with the first hop only
            raw.request_body = _request_body(session, kwargs, active.max_body)
        stream = resp.content
        if not raw.head and type(stream) is StreamReader:  # a body to come (no body: EmptyStreamReader)
            tap = BodyTap(active.max_body)
            raw.response_body = tap
            pending = PendingEvent(active.agent, raw, tap)
            _READING[id(stream)] = pending
            stream.__class__ = _TeeReader
            _state.STREAMS[resp] = pending
            # a response dropped unread and unclosed still gets its event when it is collected
            weakref.finalize(resp, _finish_key, id(stream))
            if stream._eof and not stream._buffer:  # nothing left to read (an empty body)
                _finish(stream)
            return
    raw.response_time = now
    active.agent.capture(raw)


def _raw(active: Active, resp: aiohttp.ClientResponse, started: float) -> Optional[RawCapture]:
    """The exchange's raw parts with the callbacks' fields; ``None`` when ``SKIP_OUTGOING`` says so."""
    req = resp.request_info
    if active.skip is not None and call_user(active.skip, "SKIP_OUTGOING", req, resp):
        return None
    raw = RawCapture(
        direction="Outgoing",
        method=req.method,
        uri=str(req.real_url),
        request_time=started,
        request_headers=tuple(req.headers.items()),
        response_status=resp.status,
        response_headers=tuple(resp.headers.items()),
        log_body=active.log_body,
    )
    active.identify(raw, req, resp)
    return raw


def _make_release(original: Func) -> Func:
    """``release`` and ``close``: the caller is done with the response; its event goes with what was read."""

    @functools.wraps(original)
    def release(self: aiohttp.ClientResponse) -> Any:
        try:
            return original(self)
        finally:
            if stream_of(self) is not None:
                _finish(self.content)

    return release


PATCHES: List[Patch] = [
    Patch(aiohttp.ClientSession, "_request", _make_request),
    Patch(aiohttp.ClientResponse, "release", _make_release),
    Patch(aiohttp.ClientResponse, "close", _make_release),
]
