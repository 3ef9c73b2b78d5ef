"""``MoesifMiddleware``: an aiohttp middleware that records each HTTP call as a Moesif event.

::

    app = web.Application(middlewares=[MoesifMiddleware({"APPLICATION_ID": "..."})])

It translates aiohttp's ``Request`` and ``StreamResponse`` into a :class:`moesif_core.RawCapture`; the rules (the
transaction id, sampling and governance before the handler, building, masking and sending the event) are the
core's. What it does per call, and why that way:

- **Request body**: teed as the handler reads it, whichever way it does (``read()``, ``json()``, ``post()``, a
  multipart upload through ``multipart()``, ``content.iter_chunked()``): for the length of the call the request's
  own payload stream is given a subclass of aiohttp's ``StreamReader`` that adds nothing but a copy of each chunk
  handed out (at most ``MAX_BODY_SIZE`` kept), and gets its class back when the call ends. No other request, and
  nothing global, is touched. A body the handler never reads is not read for it (it is not in the event), unless
  an outer middleware read it whole: then the bytes aiohttp keeps after ``read()`` are used.
- **Response body**: a response the handler returns unprepared (``web.Response``, ``json_response``) carries its body:
  it is copied from there (up to the cap); a body given as a file or another payload object, or a ``FileResponse``
  (sent with ``sendfile``), is not read for the event, which then has none. A response the handler prepared and wrote
  itself (a ``StreamResponse``, server-sent events with ``aiohttp_sse``) is teed as it is written, through the
  per-request hooks aiohttp's payload writer calls for every chunk and before the headers go out (the writer belongs
  to this request alone). Nothing is held back: a streamed response streams.
- **Headers**: ``X-Moesif-Transaction-Id`` (the core's rule: the client's id when sane, else a new one) and the
  headers of non-blocking governance rules go on the response before it is sent, whichever way it is sent. The
  event's response headers are those the response has when the handler returns (aiohttp adds ``Content-Length``,
  ``Date`` and ``Server`` to an unprepared response only when it sends it, after every middleware).
- **Errors**: an ``aiohttp.web.HTTPException`` the handler raises (``HTTPNotFound``, a redirect, also the router's
  own 404/405) is a response in aiohttp: recorded with its status, headers and text, and re-raised (the same
  object). Any other exception is recorded as a 500 and re-raised unchanged. A handler cancelled because its client
  went away (aiohttp's ``handler_cancellation``) is recorded as a 499.
- **Governance rules on the JSON body** (``request.body.*``, and only then): the body is read ahead with
  ``request.read()`` (when its ``Content-Length`` is within ``MAX_BODY_SIZE``; never a multipart body). aiohttp
  keeps what ``read()`` returned, so the handler's ``read()``, ``json()``, ``text()`` and ``post()`` get it again;
  a handler reading ``request.content`` itself would find it consumed.
- **Websockets** (an ``Upgrade: websocket`` request) pass straight through: no event, nothing touched.

The callbacks (``IDENTIFY_USER``, ``IDENTIFY_COMPANY``, ``GET_SESSION_TOKEN``, ``GET_METADATA``, ``SKIP``) are
called as ``fn(request, response)`` when the handler has returned (or raised: then ``response`` is the
``HTTPException``, or a bare 500 ``web.Response``). They may be plain functions (as in the original) or return an
awaitable, which is awaited. With governance rules, ``IDENTIFY_USER`` and ``IDENTIFY_COMPANY`` are also called
before the handler with ``response`` ``None``, as the original did. ``MASK_EVENT_MODEL(event_model)`` runs in the
core's worker thread.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple

from aiohttp import hdrs, web
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, istr

from moesif_core import (
    CALLBACK_FAILED,
    TRANSACTION_ID_HEADER,
    Agent,
    AgentControls,
    BodyTap,
    EarlyDecision,
    MoesifAPI,
    PreApp,
    ProfileHelpers,
    RawCapture,
    Settings,
    call_user,
    field_callbacks,
    json_body,
    lower_headers,
    outgoing,
    transaction_id_for,
)

from .version import __version__

__all__ = ["MoesifMiddleware"]

logger = logging.getLogger("moesif")

#: Sent as ``User-Agent`` on every call to the ingestion API.
USER_AGENT = f"moesif_aiohttp-python/{__version__}"  # the family's form (the original sent moesif_aiohttp/1.0.0)
#: Where error messages say the settings were written.
WHERE = "MoesifMiddleware(settings)"
#: The status of a call whose client went away before it was answered (nginx's "client closed request").
CLIENT_CLOSED_STATUS = 499
#: moesif-aiohttp 1.1.0's defaults where they differ from the core's: batches of 100, sent every 2 s.
DEFAULTS: Mapping[str, Any] = {"BATCH_SIZE": 100, "EVENT_BATCH_TIMEOUT": 2}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HeadersHook = Optional[Callable[["CIMultiDict[str]"], Awaitable[None]]]
ChunkHook = Optional[Callable[[bytes], Awaitable[None]]]

#: Header names as multidict keys that need no case folding per lookup.
_TID_KEY = istr(TRANSACTION_ID_HEADER)
_UPGRADE_KEY = hdrs.UPGRADE
_time = time.time

#: The request body taps of the calls in progress, with the stream's position when teeing began, by ``id()`` of the
#: payload stream they tee (a ``StreamReader`` has ``__slots__``: no room for an attribute of ours, and no weak
#: references).
_READING: Dict[int, Tuple[BodyTap, int]] = {}


class _TeeReader(StreamReader):
    """aiohttp's ``StreamReader`` that also copies every chunk it hands out into its call's tap. Only the class of
    one request's payload stream is switched to this, for the length of that call; it adds no state (so the switch
    is allowed) and every read method of ``StreamReader`` hands data out through ``_read_nowait_chunk``."""

    __slots__ = ()

    def _read_nowait_chunk(self, n: int) -> bytes:
        start = self._cursor
        data = super()._read_nowait_chunk(n)
        reading = _READING.get(id(self))
        if reading is not None and data:
            tap, base = reading
            # bytes before base + total were fed already: aiohttp's multipart reader reads ahead and puts some back
            # (unread_data), and reads them again
            seen = base + tap.total - start
            if seen <= 0:
                tap.feed(data)
            elif seen < len(data):
                tap.feed(data[seen:])
        return data


def _uri(request: web.Request) -> str:
    """The URL as the client asked for it: scheme, host, then the path and query as sent (``request.url`` is the
    same built through yarl, normalised and at twice the cost)."""
    return f"{request.scheme}://{request.host}{request.raw_path}"


#: What :func:`_now` gives for a result that needed awaiting.
_AWAITABLE = object()


def _now(value: Any) -> Any:
    """A callback's result where nothing can be awaited: an awaitable one is closed (no "never awaited" warning)
    and stands for :data:`_AWAITABLE`."""
    if not inspect.isawaitable(value):
        return value
    close = getattr(value, "close", None)
    if callable(close):
        close()
    return _AWAITABLE


async def _awaited(value: Any, name: str) -> Any:
    """A callback's result, awaited when it is awaitable; ``None`` (logged) if that raises."""
    if not inspect.isawaitable(value):
        return value
    try:
        return await value
    except Exception:
        logger.warning(CALLBACK_FAILED, name, exc_info=True)
        return None


class _Call:
    """One HTTP call passing through: the taps, the id, the pre-app decision's outcome, and the writer's hooks."""

    __slots__ = (
        "request",
        "raw",
        "transaction_id",
        "request_body",
        "response_body",
        "stream",
        "writer",
        "prev_headers_hook",
        "prev_chunk_hook",
        "extra_headers",
        "capture",
    )

    def __init__(self, mw: MoesifMiddleware, request: web.Request) -> None:
        request_time = _time()
        self.request = request
        tid: Optional[str] = None
        if mw.add_transaction_id:
            tid = transaction_id_for(request.headers.get(_TID_KEY))
        self.transaction_id = tid
        request_headers: Any = request.raw_headers  # bytes pairs (HeaderPairs names str ones): the worker decodes them
        #: the capture, made now with what the request says (the rest is filled in when the call ends); sampling
        #: and governance put the weight and the blocking rule's id in it
        self.raw = RawCapture(
            method=request.method,
            uri=_uri(request),
            request_time=request_time,
            request_headers=request_headers,
            transaction_id=tid,
            log_body=mw.log_body,
        )
        self.request_body: Optional[BodyTap] = None
        self.response_body: Optional[BodyTap] = None
        self.stream: Optional[StreamReader] = None
        self.extra_headers: List[Tuple[str, str]] = []
        self.capture = True
        # the payload writer is this request's own: its hooks see this call's headers and body chunks only
        writer: Any = request.writer
        self.writer = writer
        self.prev_headers_hook: HeadersHook = getattr(writer, "_on_headers_sent", None)
        self.prev_chunk_hook: ChunkHook = getattr(writer, "_on_chunk_sent", None)
        writer._on_headers_sent = self.on_headers
        if mw.log_body:
            limit = mw.max_body_size
            self.response_body = BodyTap(limit)
            writer._on_chunk_sent = self.on_chunk
            stream = request.content
            # no body: aiohttp's EmptyStreamReader, left alone; already teed: an outer MoesifMiddleware's
            if type(stream) is StreamReader:
                self.request_body = tap = BodyTap(limit)
                _READING[id(stream)] = (tap, stream._cursor)
                stream.__class__ = _TeeReader
                self.stream = stream

    def add_headers(self, headers: CIMultiDict[str]) -> None:
        """The transaction id (unless the handler set one) and the non-blocking rules' headers (theirs win)."""
        for name, value in self.extra_headers:
            headers[name] = value
        tid = self.transaction_id
        if tid is not None and _TID_KEY not in headers:
            headers[TRANSACTION_ID_HEADER] = tid

    async def on_headers(self, headers: CIMultiDict[str]) -> None:
        # headers go out once: the writer gets its hook back, which also ends the reference cycle call -> writer ->
        # this hook -> call (the request and its writer are then freed without waiting for the cyclic GC)
        prev = self.prev_headers_hook
        self.writer._on_headers_sent = prev
        try:
            self.add_headers(headers)
        except Exception:
            logger.warning("moesif: could not add the response headers; the response is not affected", exc_info=True)
        if prev is not None:
            await prev(headers)

    async def on_chunk(self, chunk: bytes) -> None:
        tap = self.response_body
        if tap is not None and chunk:
            tap.feed(chunk)
        if self.prev_chunk_hook is not None:
            await self.prev_chunk_hook(chunk)

    def stop_teeing(self) -> None:
        """The call is over: its request stream gets its class back; the writer stops feeding the tap (it may write
        the returned response later, whose body is taken from the response itself)."""
        stream = self.stream
        if stream is not None:
            self.stream = None
            _READING.pop(id(stream), None)
            stream.__class__ = StreamReader
        if self.writer._on_chunk_sent == self.on_chunk:  # ==: each read of a bound method is a new object
            self.writer._on_chunk_sent = self.prev_chunk_hook


class MoesifMiddleware(ProfileHelpers, AgentControls):
    """``web.Application(middlewares=[MoesifMiddleware(settings)])``: record every HTTP call of the app to Moesif.

    ``settings`` is the original's dict (``APPLICATION_ID``, ``LOG_BODY``, ``DEBUG``, ``BATCH_SIZE``,
    ``EVENT_BATCH_TIMEOUT``, ``EVENT_QUEUE_SIZE``, ``EVENT_WORKER_COUNT``, ``BASE_URI``, ``SKIP``,
    ``IDENTIFY_USER``, ``IDENTIFY_COMPANY``, ``GET_SESSION_TOKEN``, ``GET_METADATA``, ``MASK_EVENT_MODEL``,
    ``AUTHORIZATION_HEADER_NAME``, ``AUTHORIZATION_USER_ID_FIELD``, ``CAPTURE_OUTGOING_REQUESTS``, plus every key
    the other Moesif packages accept), validated here: a wrong key or type raises ``ValueError``/``TypeError``
    naming it. ``update_user``, ``update_users_batch``, ``update_company``, ``update_companies_batch`` (and the
    subscription ones) send profiles synchronously: from a handler, run them in a thread
    (``await loop.run_in_executor(None, middleware.update_user, profile)``).
    """

    #: aiohttp's mark of a new-style middleware (what ``@web.middleware`` sets): called as ``mw(request, handler)``
    __middleware_version__ = 1

    def __init__(self, settings: Optional[Mapping[str, Any]]) -> None:
        validated = Settings.from_mapping(settings, where=WHERE, defaults=DEFAULTS)
        #: the settings dict as the user gave it (the original kept it under this name)
        self.settings: Mapping[str, Any] = validated.raw
        #: the validated settings
        self.moesif_settings = validated
        self.agent = Agent(validated, user_agent=USER_AGENT)
        self.client = self.agent.client
        #: ``middleware.api_client.update_user(...)`` raises on failure, as the original's ``api_client`` did
        self.api_client = MoesifAPI(self.client)
        self.DEBUG = validated.debug
        self.LOG_BODY = self.log_body = validated.log_body
        self.max_body_size = validated.max_body_size
        self.add_transaction_id = not validated.disable_transaction_id
        self._skip = validated.skip
        #: ``(setting name, RawCapture attribute, callback)`` for the callbacks that are set, in the core's order
        self._field_callbacks = field_callbacks(validated)
        self._has_callbacks = self._skip is not None or bool(self._field_callbacks)
        #: early sampling and governance, decided by the core
        self.preapp = PreApp(self.agent)
        if validated.capture_outgoing_requests:  # the core logs a missing package or a failing start
            try:
                from moesifpythonrequest import start
            except ImportError:
                start = None  # type: ignore[assignment]
            outgoing.start_outgoing_capture(start, validated, self.agent)
        logger.debug("moesif: moesif-aiohttp %s ready (%s)", __version__, validated.describe())

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        upgrade = request.headers.get(_UPGRADE_KEY)
        if upgrade is not None and upgrade.lower() == "websocket":
            return await handler(request)
        try:
            call = _Call(self, request)
        except Exception:  # a request we cannot read: serve it untouched rather than fail it
            logger.warning(
                "moesif: could not start capturing this request; it is served without capture", exc_info=True
            )
            return await handler(request)
        early = self.preapp.begin()
        if early is not None:
            try:
                blocked = await self._decide(call, early)
            except Exception:
                logger.warning(
                    "moesif: could not apply the sampling and governance config; the request goes on", exc_info=True
                )
                blocked = None
            if blocked is not None:  # blocked by a rule: the handler is not called
                await self._end(call, blocked)
                return blocked
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # a response in aiohttp (raised): recorded as one, raised on
            await self._end(call, exc)
            raise
        except Exception:
            await self._end(call, None)
            raise
        except BaseException:  # cancelled (the client went away, with handler_cancellation): nothing can be awaited now
            self._end_cancelled(call)
            raise
        if self._has_callbacks:
            await self._end(call, response)
        else:
            self._end_plain(call, response)
        return response

    async def _decide(self, call: _Call, early: EarlyDecision) -> Optional[web.Response]:
        """The core's pre-app decision in aiohttp's terms; the blocked answer, or ``None`` to call the handler."""
        request = call.request
        headers = lower_headers(request.headers.items())
        if not early.sample(request.method, request.path, headers, request.remote):
            call.capture = False
        call.raw.weight = early.weight
        if not early.governs:
            return None
        body = None
        if early.needs_body and request.body_exists and request.content_type != "multipart/form-data":
            # aiohttp keeps what read() returned: the handler's read(), json(), text() and post() get it again
            length = request.content_length
            if length is not None and length <= self.max_body_size:
                body = json_body(await request.read())
        user_id = company_id = None
        s = self.moesif_settings
        if s.identify_user is not None:
            user_id = await _awaited(call_user(s.identify_user, "IDENTIFY_USER", request, None), "IDENTIFY_USER")
        if s.identify_company is not None:
            company_id = await _awaited(
                call_user(s.identify_company, "IDENTIFY_COMPANY", request, None), "IDENTIFY_COMPANY"
            )
        early.govern(call.raw.uri, user_id, company_id, body)
        if not early.blocked:
            call.extra_headers = early.headers
            return None
        call.raw.blocked_by = early.blocked_by
        return web.Response(status=early.status, headers=early.headers, body=early.body)

    async def _end(self, call: _Call, response: Optional[web.StreamResponse]) -> None:
        """The handler is done: call the callbacks, queue the capture. Never raises."""
        try:
            call.stop_teeing()
            if response is None:
                response = web.Response(status=500)  # what the callbacks see of a handler that raised
            if not response.prepared:
                call.add_headers(response.headers)  # sent after us, whichever middleware wraps ours
            if not call.capture:
                return
            request = call.request
            if self._skip is not None and await _awaited(call_user(self._skip, "SKIP", request, response), "SKIP"):
                return
            raw = self._raw(call, response)
            for name, field, fn in self._field_callbacks:
                setattr(raw, field, await _awaited(call_user(fn, name, request, response), name))
            self.agent.capture(raw)
        except Exception:
            logger.warning("moesif: error while capturing the event; the request is not affected", exc_info=True)

    def _end_plain(self, call: _Call, response: web.StreamResponse) -> None:
        """:meth:`_end` for a response returned, without callbacks: nothing to await. Never raises."""
        try:
            call.stop_teeing()
            if not response.prepared:
                call.add_headers(response.headers)
            if call.capture:
                self.agent.capture(self._raw(call, response))
        except Exception:
            logger.warning("moesif: error while capturing the event; the request is not affected", exc_info=True)

    def _end_cancelled(self, call: _Call) -> None:
        """A cancelled call, recorded as 499 (nginx's "client closed request"), with the callbacks that need no
        awaiting (one that returns an awaitable gives nothing; an awaitable ``SKIP`` skips: the safe side). Never
        raises."""
        try:
            call.stop_teeing()
            if not call.capture:
                return
            request = call.request
            response = web.Response(status=CLIENT_CLOSED_STATUS)
            call.add_headers(response.headers)
            if self._skip is not None:
                skip = _now(call_user(self._skip, "SKIP", request, response))
                if skip is _AWAITABLE or skip:
                    return
            raw = self._raw(call, response)
            for name, field, fn in self._field_callbacks:
                value = _now(call_user(fn, name, request, response))
                setattr(raw, field, None if value is _AWAITABLE else value)
            self.agent.capture(raw)
        except Exception:
            logger.warning("moesif: error while capturing a cancelled request", exc_info=True)

    def _raw(self, call: _Call, response: web.StreamResponse) -> RawCapture:
        request = call.request
        request_body = call.request_body
        if request_body is not None and not request_body.total:
            cached = getattr(request, "_read_bytes", None)  # read whole before us (an outer middleware)
            if cached:
                request_body.feed(cached)
        response_body = call.response_body
        if response_body is not None and not response.prepared:  # not written yet: its body is all there
            body = getattr(response, "body", None)
            if isinstance(body, bytes):
                response_body.feed(body)
            elif isinstance(body, bytearray):
                response_body.feed(bytes(body))
        raw = call.raw
        raw.request_body = request_body
        raw.response_time = _time()
        raw.response_status = response.status
        raw.response_headers = tuple(response.headers.items())
        raw.response_body = response_body
        raw.peer_ip = request.remote
        return raw
