"""``MoesifMiddleware``: a plain ASGI middleware that records each HTTP call as a Moesif event.

It wraps ``receive`` and ``send`` and watches the messages go by: request body chunks are teed into a capped
:class:`~moesif_core.BodyTap` as the app reads them, the response start gets ``x-moesif-transaction-id`` added,
and response body chunks are teed as they are sent. Nothing is buffered or re-ordered, so the app reads its body
as usual, streamed responses and server-sent events go out chunk by chunk, background tasks run, and
``http.disconnect`` reaches the app. Websocket and lifespan scopes pass straight through.

The call ends when the last body chunk has been sent (``more_body: False``), when the client disconnects, or when
the app raises or returns. At that point the user's callbacks are called (see :mod:`moesifasgi.callbacks`), and the
raw parts are handed to the core's queue, which takes a short lock and never waits on the network; headers, JSON,
base64, masking and gzip all happen in the core's worker threads. An exception from the app is recorded as a 500
and re-raised unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moesif_core import (
    TRANSACTION_ID_HEADER,
    Agent,
    AgentControls,
    BodyTap,
    MoesifAPI,
    PreApp,
    ProfileHelpers,
    RawCapture,
    Settings,
    field_callbacks,
    transaction_id_for,
)

from . import governance
from .callbacks import UserCallback, call_all_sync, is_async_callable
from .objects import CallbackResponse, callback_request
from .options import (
    CLIENT_CLOSED_STATUS,
    DEFAULTS,
    TRANSACTION_ID_HEADER_BYTES,
    USER_AGENT,
    WHERE,
)
from .outgoing import start_outgoing_capture

logger = logging.getLogger("moesif")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_time = time.time
_NOT_SHIELDED = contextlib.nullcontext()
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class MoesifMiddleware(ProfileHelpers, AgentControls):
    """Record every HTTP call of ``app`` to Moesif::

        app.add_middleware(MoesifMiddleware, settings={"APPLICATION_ID": "..."})  # FastAPI, Starlette
        app = MoesifMiddleware(app, settings={...})                               # any ASGI app

    The callbacks (``SKIP``, ``IDENTIFY_USER``, ``IDENTIFY_COMPANY``, ``GET_SESSION_TOKEN``, ``GET_METADATA``) are
    called as ``fn(request, response)`` once the response has been sent, with a Starlette ``Request`` and a
    :class:`~moesifasgi.objects.CallbackResponse`; each may be a plain function or ``async def``.
    ``MASK_EVENT_MODEL`` may be ``async def`` too; it runs in the background worker. ``update_user``,
    ``update_users_batch``, ``update_company``, ``update_companies_batch``, ``update_subscription`` and
    ``update_subscriptions_batch`` send profiles (blocking calls: from async code, run them in a thread).
    """

    def __init__(self, app: Optional[ASGIApp] = None, settings: Optional[Mapping[str, Any]] = None) -> None:
        self.app = app
        validated = Settings.from_mapping(settings, where=WHERE, defaults=DEFAULTS)
        _allow_async_mask(validated)
        #: the settings dict as the user gave it (the original kept it under this name)
        self.settings: Mapping[str, Any] = validated.raw
        #: the validated settings
        self.moesif_settings = validated
        self.agent = Agent(validated, user_agent=USER_AGENT)
        self.client = self.agent.client
        #: ``middleware.api_client.update_user(...)`` raises on failure, as the original's ``api_client`` did
        self.api_client = MoesifAPI(self.client)
        self.log_body = validated.log_body
        self.max_body_size = validated.max_body_size
        self.add_transaction_id = not validated.disable_transaction_id
        self._skip = UserCallback.of(validated.skip, "SKIP")
        #: ``(RawCapture attribute, callback)`` for the callbacks that are set, in the core's order
        self._field_callbacks: List[Tuple[str, UserCallback]] = [
            (field, UserCallback(fn, name)) for name, field, fn in field_callbacks(validated)
        ]
        self._has_callbacks = self._skip is not None or bool(self._field_callbacks)
        by_field = dict(self._field_callbacks)
        #: called before the app too, when there are governance rules
        self.identify_user = by_field.get("user_id")
        self.identify_company = by_field.get("company_id")
        #: early sampling and governance, decided by the core
        self.preapp = PreApp(self.agent)
        if validated.capture_outgoing_requests:
            start_outgoing_capture(validated, self.agent)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is None:
            raise RuntimeError(
                "MoesifMiddleware was created without an app; use app.add_middleware(MoesifMiddleware, "
                "settings=...) or MoesifMiddleware(app, settings=...)"
            )
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        try:
            call = _Call(self, scope, receive, send)
        except Exception:  # a scope we cannot read: serve it untouched rather than fail it
            logger.warning(
                "moesif: could not start capturing this request; it is served without capture", exc_info=True
            )
            await app(scope, receive, send)
            return
        early = self.preapp.begin()
        if early is not None:
            try:
                blocked = await governance.apply(call, early, self.identify_user, self.identify_company)
            except Exception:
                logger.warning(
                    "moesif: could not apply the sampling and governance config; the request goes on", exc_info=True
                )
                blocked = None
            if blocked is not None:  # blocked by a rule: the app is not called
                for message in blocked:
                    await call.send(message)
                return
        try:
            await app(scope, call.receive, call.send)
        except Exception:
            if not call.done:
                await self._end(call, failed=True)
            raise
        except BaseException:  # cancelled: this task can await no more; record what we can without awaiting
            if not call.done:
                self._end_cancelled(call)
            raise
        if not call.done:  # the app returned without completing its response
            await self._end(call)

    # -- the end of a call ---------------------------------------------------------------------------------------

    async def _end(self, call: _Call, *, failed: bool = False) -> None:
        """The call is over: call the callbacks, queue the capture. Never raises (but a cancellation that reaches
        it is re-raised once the capture is queued)."""
        if not self._has_callbacks:
            self._end_plain(call, failed)
            return
        call.done = True
        response_time = _time()
        status = call.final_status(failed)
        request_body, response_body = call.stop_teeing()
        fields: Dict[str, Any] = {}
        decided = self._skip is None  # whether SKIP has said "send it"
        try:
            request = callback_request(call.scope, request_body)
            response = CallbackResponse(status, call.sent_headers or [], response_body)
            # The call is over but its task goes on: Starlette's StreamingResponse cancels its task group as soon as
            # the stream ends, which would cancel us while a callback is awaited. Callbacks that cannot suspend
            # cannot be cancelled, and go without the (costly) shield.
            with anyio.CancelScope(shield=True) if self._may_suspend() else _NOT_SHIELDED:
                if self._skip is not None:
                    if await self._skip(request, response):
                        return
                    decided = True
                threaded = [(f, cb) for f, cb in self._field_callbacks if cb.in_thread]
                if len(threaded) > 1:  # one thread hop for all of them (a hop costs ~100 us here)
                    for field, value in (
                        await anyio.to_thread.run_sync(call_all_sync, threaded, request, response)
                    ).items():
                        fields[field] = await value if inspect.isawaitable(value) else value
                for field, cb in self._field_callbacks:
                    if len(threaded) <= 1 or not cb.in_thread:
                        fields[field] = await cb(request, response)
        except Exception:  # UserCallback does not raise: this is for our own code
            logger.warning("moesif: error while calling the callbacks; the request is not affected", exc_info=True)
        except BaseException:  # cancelled all the same (a native task.cancel()): send what we have, unless SKIP
            if decided:  # had not answered yet
                self._record(call, status, response_time, request_body, response_body, fields)
            raise
        self._record(call, status, response_time, request_body, response_body, fields)

    def _may_suspend(self) -> bool:
        """Whether calling the callbacks may await (an ``async def`` one, or one run in a thread)."""
        skip = self._skip
        if skip is not None and (skip.is_async or skip.in_thread):
            return True
        return any(cb.is_async or cb.in_thread for _, cb in self._field_callbacks)

    def _end_plain(self, call: _Call, failed: bool = False) -> None:
        """:meth:`_end` without callbacks: nothing to await."""
        call.done = True
        request_body, response_body = call.request_body, call.response_body
        call.request_body = call.response_body = None  # later chunks are not kept
        status = call.status
        if status is None:
            status = call.final_status(failed)
        self._record(call, status, _time(), request_body, response_body, None)

    def _end_cancelled(self, call: _Call) -> None:
        """:meth:`_end` for a cancelled request: only plain-function callbacks can be called now. The server gave
        up on the call (a client gone, a shutdown): with no response started it is recorded as 499."""
        call.disconnected = True
        if not self._has_callbacks:
            self._end_plain(call)
            return
        call.done = True
        response_time = _time()
        status = call.final_status(False)
        request_body, response_body = call.stop_teeing()
        fields: Dict[str, Any] = {}
        try:
            request = callback_request(call.scope, request_body)
            response = CallbackResponse(status, call.sent_headers or [], response_body)
            if self._skip is not None:
                called, skip = self._skip.call_now(request, response)
                if not called or skip:
                    return  # an async SKIP cannot be awaited now: not sending is the safe side
            for field, cb in self._field_callbacks:
                fields[field] = cb.call_now(request, response)[1]
        except Exception:
            logger.warning("moesif: error while recording a cancelled request", exc_info=True)
            return
        self._record(call, status, response_time, request_body, response_body, fields)

    def _record(
        self,
        call: _Call,
        status: int,
        response_time: float,
        request_body: Optional[BodyTap],
        response_body: Optional[BodyTap],
        fields: Optional[Dict[str, Any]],
    ) -> None:
        """Hand the raw parts to the core's queue (a short lock, no I/O). Never raises."""
        try:
            raw = call.raw
            headers = call.app_headers
            if headers is None:
                headers = []
            elif raw.transaction_id is not None:  # sent with the response's headers
                headers = [*headers, (TRANSACTION_ID_HEADER, raw.transaction_id)]
            raw.response_headers = headers
            raw.response_time = response_time
            raw.response_status = status
            raw.request_body = request_body
            raw.response_body = response_body
            client = call.scope.get("client")
            if client:
                raw.peer_ip = client[0]
            if fields:
                for name, value in fields.items():
                    setattr(raw, name, value)
            self.agent.capture(raw)
        except Exception:
            logger.warning("moesif: error while capturing the event; the request is not affected", exc_info=True)

    # -- housekeeping ----------------------------------------------------------------------------------------------


class _Call:
    """One HTTP call passing through: the wrapped ``receive``/``send`` and what they saw."""

    __slots__ = (
        "mw",
        "scope",
        "app_receive",
        "app_send",
        "raw",
        "request_headers",
        "tid_bytes",
        "request_body",
        "response_body",
        "status",
        "app_headers",
        "sent_headers",
        "done",
        "disconnected",
        "extra_headers",
    )

    def __init__(self, mw: MoesifMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        request_time = _time()
        self.mw = mw
        self.scope = scope
        self.app_receive = receive
        self.app_send = send
        method: str = scope["method"]
        headers = scope["headers"]
        #: a copy: a middleware further in may edit the scope's list in place
        self.request_headers = request_headers = list(headers)
        host: Optional[bytes] = None
        client_tid: Optional[bytes] = None
        for key, value in headers:
            if key == b"host":
                host = value
            elif key == TRANSACTION_ID_HEADER_BYTES:
                client_tid = value
        tid: Optional[str] = None
        if mw.add_transaction_id:
            tid = transaction_id_for(client_tid.decode("latin-1") if client_tid is not None else None)
            self.tid_bytes: Optional[bytes] = tid.encode("latin-1")
        else:
            self.tid_bytes = None
        #: the capture, made now with what the request says (the rest is filled in when the call ends); sampling
        #: and governance (see governance.py) put the weight and the blocking rule's id in it
        self.raw = RawCapture(
            method=method,
            uri=_uri(scope, host),
            request_time=request_time,
            request_headers=request_headers,
            transaction_id=tid,
            log_body=mw.log_body,
        )
        #: the request body's tap, made when the app reads a first chunk (most calls have no body); teeing
        #: ends with the call (``done``)
        self.request_body: Optional[BodyTap] = None
        self.response_body = BodyTap(mw.max_body_size) if mw.log_body and method != "HEAD" else None
        self.status: Optional[int] = None
        #: the response headers as the app gave them, and as they were sent (with the transaction id)
        self.app_headers: Optional[List[Any]] = None
        self.sent_headers: Optional[List[Any]] = None
        self.done = False
        self.disconnected = False
        #: the headers of non-blocking governance rules, for the response
        self.extra_headers: Optional[List[Tuple[bytes, bytes]]] = None

    def drop_capture(self) -> None:
        """Not sampled: capture nothing for this call (the transaction id header is still added)."""
        self.done = True
        self.request_body = self.response_body = None

    def final_status(self, failed: bool) -> int:
        if self.status is not None:
            return self.status
        if self.disconnected and not failed:
            return CLIENT_CLOSED_STATUS
        return 500  # the app raised, or returned without a response: the server answers 500

    def stop_teeing(self) -> Tuple[Optional[BodyTap], Optional[BodyTap]]:
        """The body taps, which now belong to the capture: later chunks are not kept."""
        taps = self.request_body, self.response_body
        self.request_body = self.response_body = None
        return taps

    async def receive(self) -> Message:
        message = await self.app_receive()
        mtype = message["type"]
        if mtype == "http.request":
            body = message.get("body")
            if body and not self.done:
                tap = self.request_body
                if tap is None:
                    mw = self.mw
                    if not mw.log_body:
                        return message
                    self.request_body = tap = BodyTap(mw.max_body_size)
                tap.feed(body)
        elif mtype == "http.disconnect" and not self.done:
            self.disconnected = True
            await self.mw._end(self)
        return message

    def send(self, message: Message) -> Awaitable[None]:
        """The app's ``send``. Not a coroutine itself: it hands back the server's ``send(message)`` for the app to
        await (one coroutine less per message), but for the response's last message, after which the call ends."""
        mtype = message["type"]
        if mtype == "http.response.body":
            tap = self.response_body
            if tap is not None:
                body = message.get("body")
                if body:
                    tap.feed(body)
            if message.get("more_body", False) or self.done:
                return self.app_send(message)
            return self._send_last(message)
        if mtype == "http.response.start":
            self.status = message["status"]
            given = message.get("headers")
            headers = given
            if headers is None:
                headers = []
            elif not isinstance(headers, list):
                headers = list(headers)
            if self.extra_headers is not None:  # non-blocking governance rules' headers win over the app's
                names = {k for k, _ in self.extra_headers}
                headers = [h for h in headers if bytes(h[0]).lower() not in names] + self.extra_headers
            self.app_headers = headers
            if self.tid_bytes is not None:
                headers = [*headers, (TRANSACTION_ID_HEADER_BYTES, self.tid_bytes)]
            if headers is not given:
                message = {**message, "headers": headers}
            self.sent_headers = headers
            return self.app_send(message)
        if mtype == "http.response.pathsend" and not self.done:  # a file sent by the server: the last message
            return self._send_last(message)
        return self.app_send(message)

    async def _send_last(self, message: Message) -> None:
        """Send the response's last message; the call is then over."""
        try:
            await self.app_send(message)
        except Exception:  # the server could not send it: the client is gone
            self.disconnected = True
            await self.mw._end(self)
            raise
        mw = self.mw
        if mw._has_callbacks:
            await mw._end(self)
        else:
            mw._end_plain(self)


def _uri(scope: Scope, host: Optional[bytes]) -> str:
    """The URL as the client asked for it: scheme, ``Host`` (else the server address), raw path, query string."""
    scheme = scope.get("scheme") or "http"
    if host:
        netloc = host.decode("latin-1")
    else:
        server = scope.get("server")
        if server:
            name, port = server[0], server[1]
            if ":" in name:
                name = f"[{name}]"
            netloc = name if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{name}:{port}"
        else:
            netloc = "localhost"
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope["path"], safe=_PATH_SAFE)
    query = scope.get("query_string")
    if query:
        return f"{scheme}://{netloc}{path}?{query.decode('latin-1')}"
    return f"{scheme}://{netloc}{path}"


_loops = threading.local()


def _allow_async_mask(settings: Settings) -> None:
    """``MASK_EVENT_MODEL`` may be ``async def`` (the original awaited it). It runs in the core's worker threads,
    which have no event loop: give each worker a private loop to run it to completion."""
    mask = settings.mask_event_model
    if mask is None or not is_async_callable(mask):
        return
    user_mask: Callable[..., Any] = mask

    def run_mask(event: Any) -> Any:
        loop = getattr(_loops, "loop", None)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            _loops.loop = loop
        return loop.run_until_complete(user_mask(event))

    settings.mask_event_model = run_mask
