"""The translation shared by both middleware classes: a Django request and response -> a
:class:`moesif_core.RawCapture`, handed to the agent.

The request path copies raw parts and calls the user's callbacks (they need the live ``request``/``response``);
everything else happens in the core's worker. Nothing here raises into the app.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from moesif_core import TRANSACTION_ID_HEADER, Agent, BodyTap, RawCapture, Settings, call_user, new_transaction_id
from moesif_core.appconfig import AppConfig, Rule
from moesif_core.governance import Decision, RequestFacts, rules_need_body
from moesif_core.identity import client_ip, user_from_headers

from .requestinfo import (
    capture_request_body,
    header_pairs,
    request_uri,
    seal_request_body,
    session_key,
    user_id_from_request,
)
from .streaming import Finisher, attach

logger = logging.getLogger("moesif")

#: An incoming ``X-Moesif-Transaction-Id`` longer than this is not reused (a fresh id is made instead).
MAX_INCOMING_TRANSACTION_ID = 128

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
        self.extra_headers: Optional[Dict[str, str]] = None


def lower_headers(meta: Any) -> Dict[str, str]:
    """The request headers with lower-case names (``HTTP_X_CASE`` -> ``x-case``), for governance and the IP."""
    out: Dict[str, str] = {}
    for key, value in header_pairs(meta):
        name = key[5:] if key[:5] == "HTTP_" else key
        out[name.replace("_", "-").lower()] = str(value)
    return out


def blocked_response(decision: Decision) -> HttpResponse:
    """What a blocked request gets instead of the view's response: the rule's status, headers and body."""
    response = HttpResponse(decision.body, status=decision.status or 403)
    for name, value in decision.headers.items():
        response[name] = value
    return response


def _cached_json_body(request: HttpRequest) -> Any:
    """The parsed JSON body when Django already holds the bytes (read up front by us or by earlier middleware)."""
    body = request.__dict__.get("_body")
    if not isinstance(body, bytes) or body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


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
            logger.warning("moesif: the %s callback raised; the event is sent without it", name, exc_info=True)
            return None
    except Exception:
        logger.warning("moesif: the %s callback raised; the event is sent without it", name, exc_info=True)
        return None
    if inspect.isawaitable(result):
        try:
            return await result
        except Exception:
            logger.warning("moesif: the %s callback raised; the event is sent without it", name, exc_info=True)
            return None
    return result


class Recorder:
    """One per settings dict: reads a request before the view, builds the capture after it."""

    def __init__(self, settings: Settings, agent: Agent) -> None:
        self.settings = settings
        self.agent = agent
        self.body_limit: Optional[int] = settings.max_body_size if settings.log_body else None
        self.add_transaction_id = not settings.disable_transaction_id
        s = settings
        #: (callback, setting name) in the order of :data:`Values`; unset ones are skipped cheaply
        self._value_callbacks: Tuple[Tuple[Optional[Callable[..., Any]], str], ...] = (
            (s.identify_user, "IDENTIFY_USER"),
            (s.identify_company, "IDENTIFY_COMPANY"),
            (s.get_session_token, "GET_SESSION_TOKEN"),
            (s.get_metadata, "GET_METADATA"),
            (s.get_api_version, "GET_API_VERSION"),
        )
        self._any_value_callback = any(fn is not None for fn, _ in self._value_callbacks)

    # -- before the view ---------------------------------------------------------------------------------------

    def begin(self, request: HttpRequest) -> Pending:
        """Take the arrival time and transaction id, and arrange the request body capture."""
        pending = Pending(time.time(), self._transaction_id(request) if self.add_transaction_id else None)
        if self.body_limit is not None:
            try:
                pending.request_body, pending.declared_size = capture_request_body(request, self.body_limit)
            except Exception:
                logger.warning("moesif: could not arrange the request body capture", exc_info=True)
        return pending

    # -- sampling and governance, before the view -------------------------------------------------------------

    def sample(self, request: HttpRequest, config: AppConfig, rules: Sequence[Rule]) -> Tuple[Pending, RequestFacts]:
        """Early sampling (a request that is not sampled costs no capture work) and :meth:`begin`; returns the
        pending capture and the request's facts for governance (user and company still to fill in)."""
        meta = request.META
        headers = lower_headers(meta)
        ip = client_ip(headers, meta.get("REMOTE_ADDR"))
        method = request.method or "GET"
        path = request.path
        weight = 1 if config.samples_everything else self.agent.sample_early(method, path, ip)
        if weight is None:
            pending = Pending(time.time(), self._transaction_id(request) if self.add_transaction_id else None)
            pending.capture = False
        else:
            pending = self.begin(request)
            if weight > 0 and not config.samples_everything:
                pending.weight = weight
        body = _cached_json_body(request) if rules and rules_need_body(rules) else None
        facts = RequestFacts(verb=method, uri=request_uri(request), path=path, ip=ip, headers=headers, body=body)
        return pending, facts

    def early_user(self, request: HttpRequest, user_id: Any, headers: Mapping[str, str], may_load: bool) -> Any:
        """The user for governance when ``IDENTIFY_USER`` gave none: ``request.user``, else the Authorization
        header rules."""
        if user_id is None:
            try:
                user_id = user_id_from_request(request, may_load)
            except Exception:  # the session or user lookup failed: the view will meet the same error
                logger.debug("moesif: could not resolve request.user for governance", exc_info=True)
        if user_id is None:
            s = self.settings
            user_id = user_from_headers(headers, s.authorization_header_name, s.authorization_user_id_field)
        return user_id

    def early_ids(self, request: HttpRequest, facts: RequestFacts, may_load: bool) -> None:
        """Fill in the facts' user and company, calling ``IDENTIFY_USER``/``IDENTIFY_COMPANY`` with ``response``
        ``None`` (as the WSGI original did before the app)."""
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
        self._set_ids(facts, self.early_user(request, user_id, facts.headers, may_load), company_id)

    async def aearly_ids(self, request: HttpRequest, facts: RequestFacts) -> None:
        """As :meth:`early_ids`, on the event loop (``request.user`` only if the app already resolved it)."""
        s = self.settings
        user_id = (
            await _async_call(s.identify_user, "IDENTIFY_USER", request, None) if s.identify_user is not None else None
        )
        company_id = (
            await _async_call(s.identify_company, "IDENTIFY_COMPANY", request, None)
            if s.identify_company is not None
            else None
        )
        self._set_ids(facts, self.early_user(request, user_id, facts.headers, False), company_id)

    @staticmethod
    def _set_ids(facts: RequestFacts, user_id: Any, company_id: Any) -> None:
        facts.user_id = None if user_id is None or user_id == "" else str(user_id)
        facts.company_id = None if company_id is None or company_id == "" else str(company_id)

    def govern(self, facts: RequestFacts, pending: Pending) -> Optional[Decision]:
        """Evaluate the rules; the decision when the request is blocked (the view must not run), else ``None``
        (a non-blocking rule's headers are kept for the view's response)."""
        decision = self.agent.governor.evaluate(facts)
        if decision is None:
            return None
        if decision.blocked:
            pending.blocked_by = decision.blocked_by
            return decision
        if decision.headers:
            pending.extra_headers = dict(decision.headers)
        return None

    def apply_extras(self, response: HttpResponseBase, pending: Pending) -> bool:
        """Add the rules' headers (and, for a request that is not sampled, the transaction id); ``True`` when the
        event is to be captured."""
        if pending.extra_headers:
            for name, value in pending.extra_headers.items():
                response[name] = value
        if pending.capture:
            return True
        if pending.transaction_id is not None:
            response[TRANSACTION_ID_HEADER] = pending.transaction_id
        return False

    @staticmethod
    def _transaction_id(request: HttpRequest) -> str:
        """The caller's ``X-Moesif-Transaction-Id`` when it sent one (as the original), else a new uuid4."""
        incoming = request.META.get("HTTP_X_MOESIF_TRANSACTION_ID")
        if isinstance(incoming, str):
            incoming = incoming.strip()
            if incoming and len(incoming) <= MAX_INCOMING_TRANSACTION_ID:
                return incoming
        return new_transaction_id()

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

    def finish(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        pending: Pending,
        values: Values,
        response_time: float,
        may_load_user: bool,
    ) -> None:
        """Add the transaction id header and queue the capture (for a streamed response: when it ends)."""
        user_id, company_id, session_token, metadata, api_version = values
        if user_id is None:
            user_id = user_id_from_request(request, may_load_user)
        if session_token is None:
            session_token = session_key(request)
        tid = pending.transaction_id
        if tid is not None:
            response[TRANSACTION_ID_HEADER] = tid
        meta = request.META
        raw = RawCapture(
            method=request.method or "GET",
            uri=request_uri(request),
            request_time=pending.request_time,
            request_headers=header_pairs(meta),
            wsgi_headers=True,
            request_body=pending.request_body,
            response_status=response.status_code,
            response_headers=list(response.items()),
            peer_ip=meta.get("REMOTE_ADDR"),
            user_id=user_id,
            company_id=company_id,
            session_token=session_token,
            metadata=metadata,
            api_version=api_version,
            transaction_id=tid,
            log_body=self.body_limit is not None,
            blocked_by=pending.blocked_by,
            weight=pending.weight,
        )
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
        seal_request_body(pending.request_body, pending.declared_size)
        self.agent.capture(raw)

    def may_load_user(self, request: HttpRequest) -> bool:
        """In sync mode, resolve a not yet resolved ``request.user`` only when the request carries a session (the
        original resolved it always, costing a session lookup and a ``Vary: Cookie`` on every response)."""
        return session_key(request) is not None
