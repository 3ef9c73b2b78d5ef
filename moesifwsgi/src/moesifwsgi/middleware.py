"""``MoesifMiddleware``: the WSGI callable that records each API call and hands it to the shipper.

What happens on the request thread, in order:

1. On arrival: the request time, the method, the URL, the header items of the environ, the peer address and a
   transaction id are copied; ``wsgi.input`` is wrapped so what the app reads is teed (only when there is a body and
   ``LOG_BODY`` is on). When the server's config samples less than everything or has governance rules,
   :mod:`moesifwsgi.governance` decides now whether to capture and whether to block (with the default config that
   costs one tuple read). The app is then called as usual.
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
import os
import random
import re
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from moesif_core import (
    TRANSACTION_ID_HEADER,
    Agent,
    BodyTap,
    MoesifAPI,
    ProfileHelpers,
    RawCapture,
    capture_internal_exceptions,
    encode_body,
)

from . import governance
from .options import build_settings, callback
from .outgoing import start_outgoing_capture
from .request_body import TeeInput, content_length, read_rest
from .response import ClosingResponse
from .uri import request_uri
from .version import __version__

logger = logging.getLogger("moesif")

Headers = List[Tuple[str, str]]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Dict[str, Any], StartResponse], Iterable[bytes]]

USER_AGENT = f"moesifwsgi-python/{__version__}"

#: An incoming ``X-Moesif-Transaction-Id`` is reused (as the originals do) when it looks like an id.
_VALID_TRANSACTION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}").fullmatch
_INCOMING_TRANSACTION_KEY = "HTTP_X_MOESIF_TRANSACTION_ID"
_CGI_AUTHORIZATION = "HTTP_CGI_AUTHORIZATION"


def _status_code(status: Optional[str]) -> Optional[int]:
    if not status:
        return None
    try:
        return int(status[:3])
    except (TypeError, ValueError):
        return None


_rng = random.Random()
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's ids
    os.register_at_fork(after_in_child=_rng.seed)
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


def transaction_id() -> str:
    """A random (version 4) UUID, as text. Four times cheaper than ``str(uuid.uuid4())``: the id only has to be
    unique, not secret, so it comes from a private PRNG seeded from ``os.urandom`` (and re-seeded after a fork)."""
    h = "%032x" % (_rng.getrandbits(128) & _UUID_CLEAR | _UUID_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
        headers: Headers = [item for item in environ.items() if item[0][:5] == "HTTP_"]
        ctype = environ.get("CONTENT_TYPE")
        if ctype:
            headers.append(("CONTENT_TYPE", ctype))
        clen = environ.get("CONTENT_LENGTH")
        if clen:
            headers.append(("CONTENT_LENGTH", clen))
        if _CGI_AUTHORIZATION in environ:  # Apache/mod_wsgi setups pass Authorization under this name
            headers = [("HTTP_AUTHORIZATION", v) if k == _CGI_AUTHORIZATION else (k, v) for k, v in headers]
        self.peer_ip: Optional[str] = environ.get("REMOTE_ADDR")
        self.transaction_id: Optional[str] = None
        if not mw.disable_transaction_id:
            incoming = environ.get(_INCOMING_TRANSACTION_KEY)
            if incoming is None:
                self.transaction_id = transaction_id()
            elif _VALID_TRANSACTION_ID(incoming):
                self.transaction_id = incoming
            else:
                self.transaction_id = transaction_id()
                headers = [h for h in headers if h[0] != _INCOMING_TRANSACTION_KEY]
        self.request_headers = headers
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
            if (clen and clen != "0") or "HTTP_TRANSFER_ENCODING" in environ:
                stream = environ.get("wsgi.input")
                if stream is not None:
                    self.content_length = content_length(clen)
                    self.input_stream = stream
                    self.request_tap = BodyTap(limit)
                    environ["wsgi.input"] = TeeInput(stream, self.request_tap)
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

    def finish(self, failed: bool = False) -> None:
        """End the call once: take the response time, run the callbacks, queue the capture. Never raises."""
        if self.done:
            return
        self.done = True
        try:
            self._emit(failed)
        except Exception:
            logger.warning("moesif: error while capturing the event; the request is not affected", exc_info=True)
        finally:
            self.environ = None

    def _emit(self, failed: bool) -> None:
        response_time = time.time()
        mw = self.mw
        status = 500 if failed else _status_code(self.status)
        request_tap = self.request_tap
        if request_tap is not None:
            read_rest(self.input_stream, request_tap, self.content_length)
        response_headers: Tuple[Tuple[str, str], ...] = tuple(self.response_headers or ())
        user_id = company_id = session_token = metadata = api_version = None
        environ = self.environ
        if mw.has_callbacks and environ is not None:
            app = mw.app
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
            if mw.skip is not None and mw.skip(app, environ, headers_map):
                logger.debug("moesif: event skipped by SKIP")
                return
            if mw.identify_user is not None:
                user_id = mw.identify_user(app, environ, headers_map)
            if mw.identify_company is not None:
                company_id = mw.identify_company(app, environ, headers_map)
            if mw.get_metadata is not None:
                metadata = mw.get_metadata(app, environ, headers_map)
            if mw.get_session_token is not None:
                session_token = mw.get_session_token(app, environ, headers_map)
            if mw.get_api_version is not None:
                api_version = mw.get_api_version(app, environ, headers_map)
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
            user_id=user_id,
            company_id=company_id,
            session_token=session_token,
            metadata=metadata,
            api_version=api_version,
            transaction_id=self.transaction_id,
            blocked_by=self.blocked_by,
            weight=self.weight,
            log_body=mw.log_body,
        )
        mw.agent.capture(raw)


class MoesifMiddleware(ProfileHelpers):
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
        self.identify_user = callback(opts.identify_user, "IDENTIFY_USER", headers_arg=True)
        self.identify_company = callback(opts.identify_company, "IDENTIFY_COMPANY", headers_arg=True)
        self.get_metadata = callback(opts.get_metadata, "GET_METADATA")
        self.get_session_token = callback(opts.get_session_token, "GET_SESSION_TOKEN")
        self.get_api_version = callback(opts.get_api_version, "GET_API_VERSION")
        self.has_callbacks = any(
            cb is not None
            for cb in (
                self.skip,
                self.identify_user,
                self.identify_company,
                self.get_metadata,
                self.get_session_token,
                self.get_api_version,
            )
        )
        self.agent = Agent(opts, user_agent=USER_AGENT)
        self._samples_all: Any = None
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
        config, rules = self.agent.remote.current()
        if rules or (config is not self._samples_all and not self._check_samples_all(config)):
            try:
                blocked = governance.apply(call, environ, config, rules)
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

    def _check_samples_all(self, config: Any) -> bool:
        """Whether ``config`` samples every call (remembered, so the common case is one identity check)."""
        if config.samples_everything:
            self._samples_all = config
            return True
        return False

    # -- shipping control ----------------------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is queued now; wait at most ``timeout`` seconds. ``True`` if everything was handled."""
        return self.agent.flush(timeout)

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Flush (within ``EXIT_FLUSH_TIMEOUT`` by default) and stop the worker threads; done at exit anyway."""
        return self.agent.shutdown(timeout)
