"""Capture for ``requests``: one wrapper on ``requests.Session.send``.

Every call goes through ``Session.send``: ``requests.get`` & co. make a ``Session`` and call it, every session
(created before capture started or after) finds it on the class, and redirects are sent through it one hop at a
time. The wrapper records one event per HTTP exchange: a redirected call gives one event per hop, each with the
request that was sent and the response that came back (the original recorded only the last response, against
the first request's time). A response is recorded once, by the ``send`` that received it (a weak set remembers
the ones already recorded, so the outer ``send`` of a redirected call records only the first hop).

Streamed responses (``stream=True``) are not read here: ``Response.iter_content`` (which ``content``, ``text``,
``json()``, ``iter_lines`` and iteration all use) is wrapped so the bytes the caller reads are fed to a capped
tap, and the event is queued when the body ends, the response is closed, or it is garbage-collected. Bytes read
from ``response.raw`` directly are not seen (the event then has no response body).
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from typing import Any, Callable, Iterator, List, Optional

import requests
from requests.utils import stream_decode_response_unicode as _decode_unicode

from moesif_core import BodyTap, RawCapture, call_user

from . import _state
from ._patch import Patch
from ._state import Active, PendingEvent, header_pairs, make_close, request_tap, stream_of, tee, track_stream

Func = Callable[..., Any]

logger = logging.getLogger("moesif")

#: ``requests.utils.stream_decode_response_unicode``, what ``iter_content(decode_unicode=True)`` applies.
stream_decode_response_unicode: Callable[[Iterator[bytes], requests.Response], Iterator[Any]] = _decode_unicode

#: Responses already recorded (by an inner ``send`` of a redirected call). Weak: nothing is kept alive.
_seen: weakref.WeakSet[requests.Response] = weakref.WeakSet()


def is_internal(request: requests.PreparedRequest) -> bool:
    """The SDK's own call: to a ``BASE_URI`` capture knows, or carrying a Moesif SDK header."""
    url = request.url
    if url and url.startswith(_state.INTERNAL_PREFIXES):
        return True
    headers = request.headers
    store = getattr(headers, "_store", None)
    if isinstance(store, dict):  # CaseInsensitiveDict keyed by lower-case name: two dict lookups
        return _state.INTERNAL_HEADERS[0] in store or _state.INTERNAL_HEADERS[1] in store
    return headers is not None and any(name in headers for name in _state.INTERNAL_HEADERS)


def _make_send(original: Func) -> Func:
    @functools.wraps(original)
    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        active = _state.ACTIVE
        if active is None or _state.internal_or_unreadable(is_internal, request):
            return original(self, request, **kwargs)
        started = time.time()
        try:
            response = original(self, request, **kwargs)
        except Exception as exc:
            # Timeouts and connection errors carry no response: no event. TooManyRedirects carries the last one.
            failed = getattr(exc, "response", None)
            if isinstance(failed, requests.Response):
                record_all(active, failed, request, started)
            raise
        record_all(active, response, request, started)
        return response

    return send


def record_all(active: Active, response: requests.Response, request: requests.PreparedRequest, started: float) -> None:
    """Record every exchange in ``response`` (its history, then itself) not recorded yet. Never raises."""
    try:
        now = time.time()
        history = response.history
        if history:
            for old in history:
                if old not in _seen:
                    elapsed = old.elapsed.total_seconds() if old.elapsed is not None else 0.0
                    record(active, old, old.request or request, started, started + elapsed)
        if response not in _seen:
            record(active, response, response.request or request, started, now)
    except Exception:
        logger.warning("moesif: error while capturing an outgoing call; the call is not affected", exc_info=True)


def _consumed(resp: requests.Response) -> bool:
    """The body has been read (``stream=False``, or read through already): ``_content`` holds it, if anything."""
    return bool(getattr(resp, "_content_consumed", True))


def record(active: Active, resp: requests.Response, req: Any, request_time: float, response_time: float) -> None:
    """One exchange: call the user's callbacks with the live objects, copy the raw parts, queue (or tee) it."""
    _seen.add(resp)
    if active.skip is not None and call_user(active.skip, "SKIP_OUTGOING", req, resp):
        return
    raw = RawCapture(
        direction="Outgoing",
        method=req.method or "GET",
        uri=req.url or "",
        request_time=request_time,
        request_headers=header_pairs(req.headers),
        response_status=resp.status_code,
        response_headers=header_pairs(resp.headers),
        log_body=active.log_body,
    )
    active.identify(raw, req, resp)
    agent = active.agent
    if active.log_body:
        raw.request_body = request_tap(req.body, active.max_body)
        if not _consumed(resp) and not raw.head:
            # stream=True and unread: the body is captured as the caller reads it
            tap = BodyTap(active.max_body)
            raw.response_body = tap
            track_stream(resp, PendingEvent(agent, raw, tap))
            return
        content = resp._content
        if content and isinstance(content, bytes):
            tap = BodyTap(active.max_body)
            tap.feed(content)  # by reference when it fits; sliced to the cap otherwise
            raw.response_body = tap
    raw.response_time = response_time
    agent.capture(raw)


def _make_iter_content(original: Func) -> Func:
    @functools.wraps(original)
    def iter_content(self: requests.Response, chunk_size: Optional[int] = 1, decode_unicode: bool = False) -> Any:
        pending = stream_of(self)
        if pending is None or _consumed(self):
            return original(self, chunk_size, decode_unicode)
        chunks = tee(original(self, chunk_size, False), pending)
        if decode_unicode:
            return stream_decode_response_unicode(chunks, self)
        return chunks

    return iter_content


PATCHES: List[Patch] = [
    Patch(requests.Session, "send", _make_send),
    Patch(requests.Response, "iter_content", _make_iter_content),
    Patch(requests.Response, "close", make_close),
]
