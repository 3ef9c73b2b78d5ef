"""``MoesifMiddleware``: the WSGI callable that records each API call and hands it to the shipper.

What happens on the request thread, in order:

1. On arrival: the request time, the method, the URL, the header items of the environ, the peer address and a
   transaction id are copied; ``wsgi.input`` is wrapped so what the app reads is teed (only when there is a body and
   ``LOG_BODY`` is on); the transaction id follows the core's rule (:func:`moesif_core.transaction_id_for`). When
   the server's config samples less than everything or has governance rules, the core's pre-app decision
   (:mod:`moesif_core.preapp`, rendered in WSGI terms by :mod:`moesifwsgi.governance`) says now whether to capture
   and whether to block (with the default config that costs one tuple read and one identity check). The app is
   then called as usual.
2. ``start_response``: status and headers are recorded and ``X-Moesif-Transaction-Id`` is added to the headers sent
   (unless ``DISABLED_TRANSACTION_ID``). The app's own header list is never modified.
3. The body: chunks pass through one by one as the app produces them and are teed up to ``MAX_BODY_SIZE``.
4. When the response ends (after the last chunk or at ``close()``): the response time is taken, the user's
   callbacks are called with the live environ (after the ``moesif.*`` environ keys are set), and a
   :class:`moesif_core.RawCapture` is queued. Building the event (header names, JSON, base64, JWT, masking,
   ``MASK_EVENT_MODEL``) and sending it happen in the agent's worker threads.

No error of the SDK or of a user callback ever reaches the app; an exception from the app is recorded as a 500 and
propagates unchanged.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from moesif_core import (
    TRANSACTION_ID_HEADER,
    Agent,
    AgentControls,
    BodyTap,
    MoesifAPI,
    PreApp,
    ProfileHelpers,
    RawCapture,
    TeeStream,
    capture_internal_exceptions,
    content_length,
    encode_body,
    environ_header_pairs,
    transaction_id_for,
)

from . import governance
from .options import build_settings, callback, field_callbacks
from .outgoing import start_outgoing_capture
from .request_body import read_rest
from .response import ClosingResponse
from .uri import request_uri
from .version import __version__

logger = logging.getLogger("moesif")

Headers = List[Tuple[str, str]]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Dict[str, Any], StartResponse], Iterable[bytes]]

USER_AGENT = f"moesifwsgi-python/{__version__}"

_INCOMING_TRANSACTION_KEY = "HTTP_X_MOESIF_TRANSACTION_ID"
_CGI_AUTHORIZATION = "HTTP_CGI_AUTHORIZATION"


def _status_code(status: Optional[str]) -> Optional[int]:
    if not status:
        return None
    try:
        return int(status[:3])
    except (TypeError, ValueError):
        return None


class Call:
    """The state of one request, from arrival to the end of its response."""

    __slots__ = (
        "mw",
        "environ",
        "server_start_response",
        "server_write",
        "request_time",
        "method",
        "uri",
        "request_headers",
        "peer_ip",
        "transaction_id",
        "content_length",
        "input_stream",
        "request_tap",
        "response_tap",
        "status",
        "response_headers",
        "extra_headers",
        "weight",
        "blocked_by",
        "capturing",
        "done",
    )

    def __init__(self, mw: MoesifMiddleware, environ: Dict[str, Any], start_response: StartResponse) -> None:
        self.request_time = time.time()
        self.mw = mw
        self.environ: Optional[Dict[str, Any]] = environ
        self.server_start_response = start_response
        self.server_write: Optional[Callable[[bytes], Any]] = None
        self.method: str = environ.get("REQUEST_METHOD") or "GET"
        self.uri = request_uri(environ)
        # The header items of the environ as they arrived; the worker turns ``HTTP_X_CASE`` into ``X-Case``.
        # (Copying the whole environ would be cheaper here but costs the worker more than it saves.)
        headers: Headers = environ_header_pairs(environ)
        if _CGI_AUTHORIZATION in environ:  # Apache/mod_wsgi setups pass Authorization under this name
            headers = [("HTTP_AUTHORIZATION", v) if k == _CGI_AUTHORIZATION else (k, v) for k, v in headers]
        self.request_headers = headers
        self.peer_ip: Optional[str] = environ.get("REMOTE_ADDR")
        self.transaction_id: Optional[str] = (
            None if mw.disable_transaction_id else transaction_id_for(environ.get(_INCOMING_TRANSACTION_KEY))
        )
        self.status: Optional[str] = None
        self.response_headers: Optional[Headers] = None
        #: headers of non-blocking governance rules, added to the app's
        self.extra_headers: Optional[Headers] = None
        self.weight: Optional[int] = None
        self.blocked_by: Optional[str] = None
        self.capturing = True
        self.done = False
        self.request_tap: Optional[BodyTap] = None
        self.response_tap: Optional[BodyTap] = None
        self.input_stream: Any = None
        self.content_length: Optional[int] = None
        if mw.log_body:
            limit = mw.max_body_size
            clen = environ.get("CONTENT_LENGTH")
            if (clen and clen != "0") or "HTTP_TRANSFER_ENCODING" in environ:
                stream = environ.get("wsgi.input")
                if stream is not None:
                    self.content_length = content_length(clen)
                    self.input_stream = stream
                    self.request_tap = BodyTap(limit)
                    environ["wsgi.input"] = TeeStream(stream, self.request_tap)
            if self.method != "HEAD":
                self.response_tap = BodyTap(limit)

    # -- what the app calls ------------------------------------------------------------------------------------

    def drop_capture(self) -> None:
        """Not sampled: capture nothing for this call (the transaction id header is still added)."""
        self.capturing = False
        self.done = True
        if self.request_tap is not None:
            assert self.environ is not None
            self.environ["wsgi.input"] = self.input_stream
        self.request_tap = self.response_tap = None
        self.environ = None

    def start_response(self, status: str, headers: Headers, exc_info: Any = None) -> Callable[[bytes], Any]:
        self.status = status
        if self.extra_headers is not None:
            names = {k.lower() for k, _ in self.extra_headers}
            headers = [h for h in headers if h[0].lower() not in names] + self.extra_headers
        if self.transaction_id is not None:
            headers = [*headers, (TRANSACTION_ID_HEADER, self.transaction_id)]
        self.response_headers = headers
        if exc_info is None:
            write = self.server_start_response(status, headers)
        else:
            write = self.server_start_response(status, headers, exc_info)
        if self.response_tap is None:
            return write  # type: ignore[no-any-return]
        self.server_write = write
        return self.write

    def write(self, data: bytes) -> Any:
        """The legacy ``write()`` callable: teed like the iterable's chunks."""
        tap = self.response_tap
        if tap is not None:
            tap.feed(data)
        assert self.server_write is not None
        return self.server_write(data)

    # -- what the middleware does with the app's result ----------------------------------------------------------

    def wrap(self, result: Iterable[bytes]) -> Iterable[bytes]:
        if not self.capturing:
            return result
        cls = type(result)
        if cls is list or cls is tuple:
            # Already complete: tee it now, end the call now, and give the server the very same object (so a
            # server that sets Content-Length from a one-item list still does).
            tap = self.response_tap
            if tap is not None:
                for chunk in result:
                    tap.feed(chunk)
            self.finish()
            return result
        return ClosingResponse(result, self)

    def finish(self, failed: bool = False, abandoned: bool = False) -> None:
        """End the call once: take the response time, run the callbacks, queue the capture. Never raises."""
        if self.done:
            return
        self.done = True
        try:
            self._emit(failed, abandoned)
        except Exception:
            logger.warning("moesif: error while capturing the event; the request is not affected", exc_info=True)
        finally:
            self.environ = None

    def finish_abandoned(self) -> None:
        """End a call whose response was collected unfinished (see :mod:`moesifwsgi.response`); run by the agent's
        worker. The request body the app left unread is not read now: the server has moved on."""
        self.finish(abandoned=True)

    def _emit(self, failed: bool, abandoned: bool = False) -> None:
        response_time = time.time()
        mw = self.mw
        status = 500 if failed else _status_code(self.status)
        request_tap = self.request_tap
        if request_tap is not None:
            read_rest(None if abandoned else self.input_stream, request_tap, self.content_length)
        response_headers: Tuple[Tuple[str, str], ...] = tuple(self.response_headers or ())
        environ = self.environ
        headers_map: Optional[Dict[str, str]] = None
        if mw.has_callbacks and environ is not None:
            headers_map = dict(response_headers)
            with capture_internal_exceptions("setting the moesif.* environ keys"):
                body = None
                if request_tap is not None and request_tap.kept:
                    body = encode_body(request_tap.data(), request_tap.truncated)[0]
                environ["moesif.request_body"] = body
                response_tap = self.response_tap
                kept = response_tap.data() if response_tap is not None and response_tap.kept else b""
                environ["moesif.response_body_chunks"] = [kept] if kept else []
                environ["moesif.response_headers"] = headers_map
            if mw.skip is not None and mw.skip(mw.app, environ, headers_map):
                logger.debug("moesif: event skipped by SKIP")
                return
        raw = RawCapture(
            method=self.method,
            uri=self.uri,
            request_time=self.request_time,
            request_headers=self.request_headers,
            wsgi_headers=True,
            request_body=request_tap,
            response_time=response_time,
            response_status=status,
            response_headers=response_headers,
            response_body=self.response_tap,
            peer_ip=self.peer_ip,
            transaction_id=self.transaction_id,
            blocked_by=self.blocked_by,
            weight=self.weight,
            log_body=mw.log_body,
        )
        if headers_map is not None and environ is not None:
            app = mw.app
            for field, cb in mw.field_callbacks:
                setattr(raw, field, cb(app, environ, headers_map))
        mw.agent.capture(raw)


class MoesifMiddleware(ProfileHelpers, AgentControls):
    """WSGI middleware that logs each API call to Moesif.

    ``app.wsgi_app = MoesifMiddleware(app.wsgi_app, {"APPLICATION_ID": "..."})`` (Flask), or wrap any WSGI app.
    Settings are validated here: a wrong one raises ``ValueError``/``TypeError`` naming the key.
    """

    def __init__(self, app: WSGIApp, settings: Mapping[str, Any]) -> None:
        self.app = app
        #: The settings dict as given (the originals kept it under this name).
        self.settings = settings
        self.options = build_settings(settings)
        opts = self.options
        self.DEBUG = opts.debug
        self.LOG_BODY = opts.log_body
        self.log_body = opts.log_body
        self.max_body_size = opts.max_body_size
        self.disable_transaction_id = opts.disable_transaction_id
        self.api_version = opts.api_version
        self.skip = callback(opts.skip, "SKIP")
        #: ``(RawCapture attribute, callback)`` for the callbacks that are set, in the core's order
        self.field_callbacks = field_callbacks(opts)
        by_field = dict(self.field_callbacks)
        #: called before the app too, when there are governance rules
        self.identify_user = by_field.get("user_id")
        self.identify_company = by_field.get("company_id")
        self.has_callbacks = self.skip is not None or bool(self.field_callbacks)
        self.agent = Agent(opts, user_agent=USER_AGENT)
        #: early sampling and governance, decided by the core
        self.preapp = PreApp(self.agent)
        #: The ingestion client (``update_user`` and friends go through it) and the originals' ``api_client``.
        self.client = self.agent.client
        self.api_client = MoesifAPI(self.client)
        if opts.capture_outgoing_requests:
            start_outgoing_capture(opts, self.agent)
        logger.debug("moesif: MoesifMiddleware ready (%s)", opts.describe())

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            call = Call(self, environ, start_response)
        except Exception:
            logger.warning(
                "moesif: could not start capturing this request; it is served without capture", exc_info=True
            )
            return self.app(environ, start_response)
        early = self.preapp.begin()
        if early is not None:
            try:
                blocked = governance.apply(call, environ, early)
            except Exception:
                logger.warning(
                    "moesif: could not apply the sampling and governance config; the request goes on", exc_info=True
                )
                blocked = None
            if blocked is not None:
                return blocked
        try:
            result = self.app(environ, call.start_response)
        except Exception:
            call.finish(failed=True)
            raise
        try:
            return call.wrap(result)
        except Exception:  # should not happen; never lose the app's response over it
            logger.warning("moesif: could not wrap the response; it is served without capture", exc_info=True)
            return result

    # -- shipping control ----------------------------------------------------------------------------------------
