"""The translation shared by both middleware classes: a Django request and response -> a
:class:`moesif_core.RawCapture`, handed to the agent.

The request path copies raw parts and calls the user's callbacks (they need the live ``request``/``response``);
everything else happens in the core's worker. Nothing here raises into the app.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

try:
    from django.http.response import ResponseHeaders
except ImportError:  # Django < 3.2: a response's headers are read and set through its own methods
    ResponseHeaders = None  # type: ignore[assignment,misc]

from moesif_core import (
    CALLBACK_FAILED,
    FIELD_CALLBACKS,
    TRANSACTION_ID_HEADER,
    Agent,
    BodyTap,
    EarlyDecision,
    PreApp,
    RawCapture,
    Settings,
    call_user,
    environ_header_pairs,
    json_body,
    lower_headers,
    transaction_id_for,
)

from .requestinfo import (
    capture_request_body,
    request_uri,
    seal_request_body,
    session_key,
    user_id_from_request,
)
from .streaming import Finisher, attach

logger = logging.getLogger("moesif")

#: user_id, company_id, session_token, metadata, api_version
Values = Tuple[Any, Any, Any, Any, Any]
_NONE: Values = (None, None, None, None, None)


class Pending:
    """What :meth:`Recorder.begin` took from the request before the view ran."""

    __slots__ = (
        "request_time",
        "transaction_id",
        "request_body",
        "declared_size",
        "capture",
        "weight",
        "blocked_by",
        "extra_headers",
    )

    def __init__(self, request_time: float, transaction_id: Optional[str]) -> None:
        self.request_time = request_time
        self.transaction_id = transaction_id
        self.request_body: Optional[BodyTap] = None
        self.declared_size: Optional[int] = None
        #: ``False``: not sampled; the response only gets its transaction id (and rule) headers
        self.capture = True
        #: the sampling weight decided before the view (``None``: the worker decides, or everything is sampled)
        self.weight: Optional[int] = None
        #: the governance rule that blocked the request
        self.blocked_by: Optional[str] = None
        #: the headers of non-blocking governance rules, added to the view's response
        self.extra_headers: Optional[List[Tuple[str, str]]] = None


def blocked_response(early: EarlyDecision) -> HttpResponse:
    """What a blocked request gets instead of the view's response: the rule's status, headers and body. Never
    raises: a header value Django refuses (a newline...) still blocks, with the status alone."""
    try:
        response = HttpResponse(early.body, status=early.status)
        for name, value in early.headers:
            response[name] = value
        return response
    except Exception:
        logger.warning("moesif: could not build a governance rule's response; sending its status only", exc_info=True)
        return HttpResponse(status=early.status)


#: The caller's transaction id header in ``request.META``.
_INCOMING_TRANSACTION_KEY = "HTTP_X_MOESIF_TRANSACTION_ID"
#: The transaction id header as Django's ``ResponseHeaders`` keys it.
_TRANSACTION_ID_KEY = TRANSACTION_ID_HEADER.lower()

#: Response classes that leave ``items()`` and ``__setitem__`` to ``HttpResponseBase`` (almost every one).
_PLAIN_RESPONSES: Dict[type, bool] = {}


def _plain_headers(response: HttpResponseBase) -> Optional[ResponseHeaders]:
    """The response's ``ResponseHeaders`` when reading and setting its headers may go to their store directly:
    ``list(response.items())`` is ``list(headers._store.values())`` (name as set, value; in order) and
    ``response[name] = value`` stores ``(name, value)`` under ``name.lower()`` once the value passed Django's checks
    (~2.5 us less per request). ``None`` for any other kind of response: use its own methods."""
    cls = type(response)
    plain = _PLAIN_RESPONSES.get(cls)
    if plain is None:
        plain = _PLAIN_RESPONSES[cls] = (
            getattr(cls, "items", None) is HttpResponseBase.items
            and getattr(cls, "__setitem__", None) is HttpResponseBase.__setitem__
        )
    if plain:
        headers = response.__dict__.get("headers")
        if type(headers) is ResponseHeaders:
            return headers
    return None


def _cached_json_body(request: HttpRequest) -> Any:
    """The parsed JSON body when Django already holds the bytes (read up front by us or by earlier middleware)."""
    body = request.__dict__.get("_body")
    return json_body(body) if isinstance(body, bytes) else None


def _sync_value(result: Any, name: str) -> Any:
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if callable(close):
            close()
        logger.warning(
            "moesif: the %s callback is async; async callbacks are awaited only when the middleware "
            "runs in async mode (ASGI with an async-capable stack). Ignored.",
            name,
        )
        return None
    return result


async def _async_call(
    fn: Callable[..., Any], name: str, request: HttpRequest, response: Optional[HttpResponseBase]
) -> Any:
    """Call a user callback on the event loop; await what it returns if it is awaitable (``async def``).

    A sync callback that needs the database (``request.user`` not yet resolved, an ORM query) makes Django raise
    ``SynchronousOnlyOperation`` on the loop; it is then run again in Django's sync thread, as Django would run a
    sync middleware. Callbacks that do not touch the database never leave the loop.
    """
    try:
        result = fn(request, response)
    except SynchronousOnlyOperation:
        try:
            return await sync_to_async(fn, thread_sensitive=True)(request, response)
        except Exception:
            logger.warning(CALLBACK_FAILED, name, exc_info=True)
            return None
    except Exception:
        logger.warning(CALLBACK_FAILED, name, exc_info=True)
        return None
    if inspect.isawaitable(result):
        try:
            return await result
        except Exception:
            logger.warning(CALLBACK_FAILED, name, exc_info=True)
            return None
    return result


class Recorder:
    """One per settings dict: reads a request before the view, builds the capture after it."""

    def __init__(self, settings: Settings, agent: Agent) -> None:
        self.settings = settings
        self.agent = agent
        self.body_limit: Optional[int] = settings.max_body_size if settings.log_body else None
        self.add_transaction_id = not settings.disable_transaction_id
        #: early sampling and governance, decided by the core
        self.preapp = PreApp(agent)
        #: (callback, setting name) in the core's order, that of :data:`Values`; unset ones are skipped cheaply
        self._value_callbacks: Tuple[Tuple[Optional[Callable[..., Any]], str], ...] = tuple(
            (getattr(settings, attr), name) for name, attr, _ in FIELD_CALLBACKS
        )
        self._any_value_callback = any(fn is not None for fn, _ in self._value_callbacks)
        #: ``SKIP`` or a value callback is set: :meth:`values` has something to call
        self._any_callback = settings.skip is not None or self._any_value_callback

    # -- before the view ---------------------------------------------------------------------------------------

    def begin(self, request: HttpRequest) -> Pending:
        """Take the arrival time and transaction id, and arrange the request body capture."""
        meta = request.META
        pending = Pending(
            time.time(),
            transaction_id_for(meta.get(_INCOMING_TRANSACTION_KEY)) if self.add_transaction_id else None,
        )
        if self.body_limit is not None and (  # a body declared or already read (a GET has none: no call)
            meta.get("CONTENT_LENGTH")
            or meta.get("HTTP_TRANSFER_ENCODING")
            or request.__dict__.get("_body") is not None
        ):
            try:
                pending.request_body, pending.declared_size = capture_request_body(request, self.body_limit)
            except Exception:
                logger.warning("moesif: could not arrange the request body capture", exc_info=True)
        return pending

    # -- sampling and governance, before the view: the core decides (see moesif_core.preapp) -----------------

    def before(self, request: HttpRequest) -> Tuple[Pending, Optional[EarlyDecision]]:
        """Everything before the view: :meth:`begin`, early sampling and governance. Returns the pending capture
        and, when a rule blocks the request (the view must not run), the decision to answer with."""
        early = self.preapp.begin()
        if early is None:  # the default: one tuple read, no sampling or rules
            return self.begin(request), None
        pending = self._sample(request, early)
        if not early.governs:
            return pending, None
        may_load = self.may_load_user(request)
        s = self.settings
        user_id = (
            _sync_value(call_user(s.identify_user, "IDENTIFY_USER", request, None), "IDENTIFY_USER")
            if s.identify_user is not None
            else None
        )
        company_id = (
            _sync_value(call_user(s.identify_company, "IDENTIFY_COMPANY", request, None), "IDENTIFY_COMPANY")
            if s.identify_company is not None
            else None
        )
        return pending, self._govern(request, early, pending, self._early_user(request, user_id, may_load), company_id)

    async def abefore(self, request: HttpRequest) -> Tuple[Pending, Optional[EarlyDecision]]:
        """As :meth:`before`, on the event loop (``request.user`` only if the app already resolved it)."""
        early = self.preapp.begin()
        if early is None:
            return self.begin(request), None
        pending = self._sample(request, early)
        if not early.governs:
            return pending, None
        s = self.settings
        user_id = (
            await _async_call(s.identify_user, "IDENTIFY_USER", request, None) if s.identify_user is not None else None
        )
        company_id = (
            await _async_call(s.identify_company, "IDENTIFY_COMPANY", request, None)
            if s.identify_company is not None
            else None
        )
        return pending, self._govern(request, early, pending, self._early_user(request, user_id, False), company_id)

    def _sample(self, request: HttpRequest, early: EarlyDecision) -> Pending:
        """Early sampling (a request that is not sampled costs no capture work), then :meth:`begin`."""
        meta = request.META
        headers = lower_headers(environ_header_pairs(meta), wsgi=True)
        if not early.sample(request.method or "GET", request.path, headers, meta.get("REMOTE_ADDR")):
            pending = Pending(time.time(), self._transaction_id(request) if self.add_transaction_id else None)
            pending.capture = False
            return pending
        pending = self.begin(request)
        pending.weight = early.weight
        return pending

    @staticmethod
    def _early_user(request: HttpRequest, user_id: Any, may_load: bool) -> Any:
        """The user for governance when ``IDENTIFY_USER`` gave none: ``request.user`` (the core falls back to the
        authorization header after that)."""
        if user_id is None or user_id == "":
            try:
                user_id = user_id_from_request(request, may_load)
            except Exception:  # the session or user lookup failed: the view will meet the same error
                logger.debug("moesif: could not resolve request.user for governance", exc_info=True)
        return user_id

    @staticmethod
    def _govern(
        request: HttpRequest, early: EarlyDecision, pending: Pending, user_id: Any, company_id: Any
    ) -> Optional[EarlyDecision]:
        """Evaluate the rules: the decision when the request is blocked, else ``None`` (a non-blocking rule's
        headers are kept for the view's response)."""
        body = _cached_json_body(request) if early.needs_body else None
        early.govern(request_uri(request), user_id, company_id, body)
        if early.blocked:
            pending.blocked_by = early.blocked_by
            return early
        if early.headers:
            pending.extra_headers = early.headers
        return None

    def apply_extras(self, response: HttpResponseBase, pending: Pending) -> bool:
        """Add the rules' headers (and, for a request that is not sampled, the transaction id); ``True`` when the
        event is to be captured."""
        if pending.extra_headers:
            for name, value in pending.extra_headers:
                response[name] = value
        if pending.capture:
            return True
        if pending.transaction_id is not None:
            response[TRANSACTION_ID_HEADER] = pending.transaction_id
        return False

    @staticmethod
    def _transaction_id(request: HttpRequest) -> str:
        """The core's rule: the caller's ``X-Moesif-Transaction-Id`` when it is a sane token, else a new id."""
        return transaction_id_for(request.META.get(_INCOMING_TRANSACTION_KEY))

    # -- the user's callbacks ----------------------------------------------------------------------------------

    def values(self, request: HttpRequest, response: HttpResponseBase) -> Optional[Values]:
        """``SKIP`` and the value callbacks, called in this thread; ``None`` when ``SKIP`` says so."""
        s = self.settings
        if s.skip is not None and _sync_value(call_user(s.skip, "SKIP", request, response), "SKIP"):
            return None
        if not self._any_value_callback:
            return _NONE
        out = [
            _sync_value(call_user(fn, name, request, response), name) if fn is not None else None
            for fn, name in self._value_callbacks
        ]
        return (out[0], out[1], out[2], out[3], out[4])

    async def avalues(self, request: HttpRequest, response: HttpResponseBase) -> Optional[Values]:
        """As :meth:`values`, on the event loop (see :func:`_async_call`)."""
        s = self.settings
        if s.skip is not None and await _async_call(s.skip, "SKIP", request, response):
            return None
        if not self._any_value_callback:
            return _NONE
        out = []
        for fn, name in self._value_callbacks:
            out.append(await _async_call(fn, name, request, response) if fn is not None else None)
        return (out[0], out[1], out[2], out[3], out[4])

    # -- after the view ----------------------------------------------------------------------------------------

    def record(self, request: HttpRequest, response: HttpResponseBase, pending: Pending, now: float) -> None:
        """After the view, not on an event loop: the rules' headers, ``SKIP`` and the value callbacks, then
        :meth:`finish`. The calls that have nothing to do are skipped here: this runs on every request."""
        if (pending.extra_headers or not pending.capture) and not self.apply_extras(response, pending):
            return
        values = self.values(request, response) if self._any_callback else _NONE
        if values is not None:
            self.finish(request, response, pending, values, now, True)

    def finish(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        pending: Pending,
        values: Values,
        response_time: float,
        sync: bool,
    ) -> None:
        """Add the transaction id header and queue the capture (for a streamed response: when it ends). ``sync``:
        not on an event loop, so a ``request.user`` not yet resolved may be (see :meth:`may_load_user`)."""
        user_id, company_id, session_token, metadata, api_version = values
        d = request.__dict__
        has_session = d.get("session") is not None  # no session (the common API call): no key
        # no ``request.user`` at all (no auth middleware, the common API call): no user
        if user_id is None and (d.get("user") is not None or d.get("_acached_user") is not None):
            user_id = user_id_from_request(request, sync and has_session and self.may_load_user(request))
        if session_token is None and has_session:
            session_token = session_key(request)  # after the user: loading it may drop a stale session's key
        tid = pending.transaction_id
        headers = _plain_headers(response)
        if tid is not None:
            if headers is not None:  # what ``response[...] = tid`` stores, without re-checking a sane token
                headers._store[_TRANSACTION_ID_KEY] = (TRANSACTION_ID_HEADER, tid)
            else:
                response[TRANSACTION_ID_HEADER] = tid
        meta = request.META
        raw = RawCapture(
            method=request.method or "GET",
            uri=request_uri(request),
            request_time=pending.request_time,
            request_headers=environ_header_pairs(meta),
            wsgi_headers=True,
            response_status=response.status_code,
            response_headers=list(headers._store.values()) if headers is not None else list(response.items()),
            peer_ip=meta.get("REMOTE_ADDR"),
            transaction_id=tid,
            log_body=self.body_limit is not None,
        )
        # The fields most calls leave ``None``, set only when they are not (~3,500 instructions fewer than passing all).
        if pending.request_body is not None:
            raw.request_body = pending.request_body
        if user_id is not None:
            raw.user_id = user_id
        if session_token is not None:
            raw.session_token = session_token
        if values is not _NONE:
            raw.company_id, raw.metadata, raw.api_version = company_id, metadata, api_version
        if pending.blocked_by is not None:
            raw.blocked_by = pending.blocked_by
        if pending.weight is not None:
            raw.weight = pending.weight
        if getattr(response, "streaming", False):
            attach(response, Finisher(self.agent, raw, pending.declared_size), self.body_limit)
            return
        if self.body_limit is not None:
            tap = BodyTap(self.body_limit)
            for chunk in response:  # an HttpResponse's chunks as written, without joining a large body into one
                tap.feed(chunk)
            if tap.total:
                raw.response_body = tap
        raw.response_time = response_time
        if pending.declared_size is not None:
            seal_request_body(pending.request_body, pending.declared_size)
        self.agent.capture(raw)

    def may_load_user(self, request: HttpRequest) -> bool:
        """In sync mode, resolve a not yet resolved ``request.user`` only when the request carries a session (the
        original resolved it always, costing a session lookup and a ``Vary: Cookie`` on every response)."""
        return session_key(request) is not None
