"""The Tornado middleware: ``Application(handlers, log_function=middleware.log_event)``.

Tornado has no middleware stack; what the original package (and its README) uses is the application's
``log_function`` setting, which Tornado calls with the finished ``RequestHandler`` right after the response has been
handed to the connection, on the IOLoop thread. :meth:`MoesifMiddleware.log_event` copies the raw parts of the call
from the handler into a :class:`moesif_core.RawCapture`, queues it and returns; building, encoding and sending the
event happen in the core's worker threads.

How the response body is obtained
---------------------------------
By the time ``log_function`` runs, the chunks the handler wrote are gone: ``RequestHandler.flush()`` empties its
buffer into the connection. So each application that uses ``middleware.log_event`` also gets one small *output
transform* of ours, placed first in ``Application.transforms``. Tornado instantiates the transforms for every
request and passes every flushed chunk through them (``transform_first_chunk`` for the first one, with the status
and headers about to be sent; ``transform_chunk`` for the rest). Ours copies at most ``MAX_BODY_SIZE`` bytes of
them into a :class:`moesif_core.BodyTap`, counts the rest, and hands every chunk on unchanged; being first, it sees
what the handler wrote, before compression (``compress_response=True``) is applied. ``log_event`` finds it in the
handler's transforms. Nothing in the handlers changes.

- ``flush()``ed and streamed responses stay streamed: each flushed chunk is tapped as it passes and sent at once;
  nothing is held back or re-buffered. The event is captured when the handler finishes (that is when Tornado calls
  ``log_function``); a body longer than the cap is sent truncated, as base64, with ``moesif_body_truncated`` in the
  event's ``metadata``. A stream that never finishes gives no event, exactly as it gives no access-log line.
- The transform is added when the application is constructed with ``log_function=middleware.log_event``: the first
  :class:`MoesifMiddleware` wraps ``tornado.web.Application.__init__`` once, and the wrapper does nothing for
  applications that do not use our ``log_event``. An application that starts using it in another way (settings
  changed after construction, ``log_event`` called from a function of yours) gets the transform at its first logged
  request, or at once with :meth:`MoesifMiddleware.attach`; until then its events carry no response body and its
  responses no ``X-Moesif-Transaction-Id`` header.
- The request body is ``handler.request.body`` (up to the cap). A ``@stream_request_body`` handler receives its body
  in ``data_received`` and Tornado keeps none of it, so its events have no request body.
- The transform is also where the ``X-Moesif-Transaction-Id`` response header is added, before the headers are sent
  (an id the client sent in that header is reused). Without it, ``log_function`` alone could not add a header: the
  response is complete when it runs.

Sampling, and why governance rules are not applied
--------------------------------------------------
The app config's sampling (``GET /v1/config``: ``sample_rate``, ``regex_config``, per user and company rates) is
applied in ``log_event``: when the rate can be decided from the verb, path and client IP, a call that is not sampled
costs no capture work at all (no callbacks, no copies); a kept call carries its weight (``100 / rate``) so Moesif
scales counts back up. When the rate needs the user, company or status, the core's worker decides after capture.

Governance rules (``GET /v1/rules``: block a request, or add headers to its response) are **not** applied by
moesiftornado, as in the original package. They must act before the handler runs, and ``log_function`` is called
only after the handler has finished and its response has been sent: by then there is nothing left to block and no
header left to add. An application that needs them should check the rules in its own ``RequestHandler.prepare``.

What runs on the IOLoop
-----------------------
``log_event`` writes Tornado's own access-log line (so setting ``log_function`` loses nothing), calls the user's
``(handler)`` callbacks (they need the live handler), copies headers and the capped bodies, and puts one object in
a bounded queue. It never touches the network, never waits for a lock held by network I/O, and never raises into
Tornado. The profile helpers (``update_user`` & co.) are synchronous HTTP calls, as in the original: call them
from a thread (``await IOLoop.current().run_in_executor(None, middleware.update_user, profile)``) rather than on
the loop.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, ClassVar, List, Mapping, Optional, Tuple, Type, cast

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
    call_user,
    field_callbacks,
    lower_headers,
    transaction_id_for,
)

from .version import __version__

if TYPE_CHECKING:
    from tornado.httputil import HTTPHeaders, HTTPServerRequest
    from tornado.web import Application, RequestHandler

__all__ = ["MoesifMiddleware"]

logger = logging.getLogger("moesif")
#: Tornado's access logger (``tornado.log.access_log``), named here so importing this module needs no Tornado.
access_log = logging.getLogger("tornado.access")

#: The original moesiftornado's defaults where they differ from the core's: batches of 25, sent every 2 s.
TORNADO_DEFAULTS: Mapping[str, Any] = {"BATCH_SIZE": 25, "EVENT_BATCH_TIMEOUT": 2}

USER_AGENT = f"moesiftornado-python/{__version__}"


def _transaction_id(headers: Optional[HTTPHeaders]) -> str:
    """The core's rule on the request's ``X-Moesif-Transaction-Id``: reused when a sane token, else a new id."""
    return transaction_id_for(headers.get(TRANSACTION_ID_HEADER) if headers is not None else None)


class ResponseTap:
    """A Tornado output transform (the ``OutputTransform`` interface) that tees the response body and adds the
    transaction id header. Each :class:`MoesifMiddleware` makes its own subclass, with its settings as class
    attributes, and puts it first in the application's ``transforms``; Tornado makes one instance per request."""

    __slots__ = ("request", "body", "transaction_id")

    limit: ClassVar[int] = 0
    log_body: ClassVar[bool] = True
    add_transaction_id: ClassVar[bool] = True

    def __init__(self, request: HTTPServerRequest) -> None:
        self.request = request
        self.body: Optional[BodyTap] = BodyTap(self.limit) if self.log_body else None
        self.transaction_id: Optional[str] = None

    def transform_first_chunk(
        self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
    ) -> Tuple[int, HTTPHeaders, bytes]:
        try:
            if self.add_transaction_id:
                tid = headers.get(TRANSACTION_ID_HEADER)  # set by the handler: it wins
                if not tid:
                    tid = _transaction_id(self.request.headers)
                    headers[TRANSACTION_ID_HEADER] = tid
                self.transaction_id = tid
            if self.body is not None and chunk:
                self.body.feed(chunk)
        except Exception:
            logger.warning("moesif: error while tapping a Tornado response; the request is not affected", exc_info=True)
        return status_code, headers, chunk

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        body = self.body
        if body is not None and chunk:
            try:
                body.feed(chunk)
            except Exception:
                logger.warning("moesif: error while tapping a Tornado response chunk", exc_info=True)
        return chunk


# -- attaching the transform to applications ---------------------------------------------------------------------

_hook_lock = threading.Lock()
_HOOK_MARK = "_moesiftornado_hook"


def _attach_if_ours(app: Any) -> None:
    settings = getattr(app, "settings", None)
    fn = settings.get("log_function") if isinstance(settings, dict) else None
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, MoesifMiddleware):
        owner.attach(app)


def install_application_hook() -> bool:
    """Wrap ``tornado.web.Application.__init__`` (once per process) so that an application constructed with
    ``log_function=<a MoesifMiddleware>.log_event`` gets that middleware's :class:`ResponseTap`. ``False`` if Tornado
    cannot be imported."""
    try:
        import tornado.web
    except ImportError:
        return False
    with _hook_lock:
        cls = tornado.web.Application
        original: Callable[..., None] = cls.__init__
        if getattr(original, _HOOK_MARK, False):
            return True

        @functools.wraps(original)
        def __init__(self: Application, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            try:
                _attach_if_ours(self)
            except Exception:
                logger.warning("moesif: could not attach to a Tornado Application", exc_info=True)

        setattr(__init__, _HOOK_MARK, True)
        cls.__init__ = __init__  # type: ignore[method-assign]
        return True


def _log_access(handler: RequestHandler) -> None:
    """What ``tornado.web.Application.log_request`` writes when no ``log_function`` is set (same logger, level,
    format and arguments); the summary is only built when the logger would emit the record."""
    status = handler.get_status()
    if status < 400:
        level = logging.INFO
    elif status < 500:
        level = logging.WARNING
    else:
        level = logging.ERROR
    if access_log.isEnabledFor(level):
        access_log.log(
            level, "%d %s %.2fms", status, handler._request_summary(), 1000.0 * handler.request.request_time()
        )


# -- the middleware ----------------------------------------------------------------------------------------------


class MoesifMiddleware(ProfileHelpers, AgentControls):
    """``middleware = MoesifMiddleware(moesif_config)``, then
    ``tornado.web.Application(handlers, log_function=middleware.log_event)``.

    ``moesif_config`` is the original's dict (``APPLICATION_ID``, ``LOG_BODY``, ``DEBUG``, ``BATCH_SIZE``, ``SKIP``,
    ``IDENTIFY_USER``, ``IDENTIFY_COMPANY``, ``GET_SESSION_TOKEN``, ``GET_METADATA``, ``MASK_EVENT_MODEL``,
    ``BASE_URI``, ``AUTHORIZATION_HEADER_NAME``, ``AUTHORIZATION_USER_ID_FIELD``, plus every key the other Moesif
    packages accept); it is validated here, and a wrong key or type raises ``ValueError``/``TypeError`` naming it.
    The callbacks take the finished ``RequestHandler``. ``BASE_URI`` is honoured whatever ``DEBUG`` says.

    ``update_user``, ``update_users_batch``, ``update_company``, ``update_companies_batch`` (and the subscription
    ones) send profiles synchronously; see the module documentation for calling them from a handler.
    """

    def __init__(self, moesif_config: Optional[Mapping[str, Any]]) -> None:
        self.settings = Settings.from_mapping(
            moesif_config, where="moesiftornado's moesif_config", defaults=TORNADO_DEFAULTS
        )
        #: The dict as given (the original kept it under this name).
        self.moesif_config = moesif_config
        self.agent = Agent(self.settings, user_agent=USER_AGENT)
        self.client = self.agent.client
        #: ``middleware.api_client.update_user(...)`` & co., raising on failure (the original's ``api_client``).
        self.api_client = MoesifAPI(self.client)
        self.DEBUG = self.settings.debug
        self.LOG_BODY = self.settings.log_body
        self.BATCH_SIZE = self.settings.batch_size
        s = self.settings
        tap: Type[ResponseTap] = type(
            "MoesifResponseTap",
            (ResponseTap,),
            {
                "__slots__": (),
                "__module__": __name__,
                "limit": s.max_body_size,
                "log_body": s.log_body,
                "add_transaction_id": not s.disable_transaction_id,
            },
        )
        self._tap_class = tap
        #: early sampling, decided by the core
        self._preapp = PreApp(self.agent)
        #: ``(setting name, RawCapture attribute, callback)`` for the callbacks that are set, in the core's order
        self._field_callbacks = field_callbacks(s)
        self._late: weakref.WeakSet[Any] = weakref.WeakSet()
        install_application_hook()
        logger.debug("moesif: moesiftornado %s ready (%s)", __version__, s.describe())

    # -- set-up ----------------------------------------------------------------------------------------------------

    def attach(self, application: Application) -> None:
        """Put this middleware's response tap first in ``application.transforms`` (idempotent).

        Done for you when the application is constructed with ``log_function=middleware.log_event``; call it
        yourself only if you set ``log_function`` some other way and want the first request's response body.
        """
        transforms: List[Any] = list(application.transforms)
        if self._tap_class in transforms:
            return
        # duck-typed: Tornado only calls transform_first_chunk/transform_chunk on what the class returns
        application.transforms = cast(Any, [self._tap_class, *transforms])

    def _find_tap(self, handler: RequestHandler) -> Optional[ResponseTap]:
        tap_class = self._tap_class
        for t in getattr(handler, "_transforms", None) or ():
            if type(t) is tap_class:
                return t
        return None

    def _attach_late(self, handler: RequestHandler) -> None:
        app = getattr(handler, "application", None)
        if app is None or app in self._late:
            return
        self._late.add(app)
        self.attach(app)
        logger.info(
            "moesif: attached to a Tornado Application that was not constructed with "
            "log_function=middleware.log_event; response bodies and the X-Moesif-Transaction-Id header "
            "start with its next request"
        )

    # -- the request path --------------------------------------------------------------------------------------

    def log_event(self, handler: RequestHandler) -> None:
        """Tornado's ``log_function``: write the access-log line, then capture the call. Never raises."""
        try:
            _log_access(handler)
        except Exception:
            logger.debug("moesif: could not write the Tornado access log line", exc_info=True)
        try:
            self._capture(handler)
        except Exception:
            logger.warning(
                "moesif: error while capturing a Tornado request; the request is not affected", exc_info=True
            )

    def _sample(self, request: HTTPServerRequest) -> Optional[int]:
        """The early sampling decision (see the module docstring): ``None`` to drop the call, else its weight
        (``None`` in the capture when everything is sampled or the worker decides)."""
        early = self._preapp.begin()
        if early is None:  # the default: one tuple read, one identity check
            return 0
        headers = lower_headers(request.headers.get_all())
        if not early.sample(request.method or "GET", request.path, headers, request.remote_ip):
            return None
        return early.weight or 0

    def _capture(self, handler: RequestHandler) -> None:
        s = self.settings
        request = handler.request
        weight = self._sample(request)
        if weight is None:  # not sampled: no capture work at all
            return
        if s.skip is not None and call_user(s.skip, "SKIP", handler):
            return
        tap = self._find_tap(handler)
        if tap is None:
            self._attach_late(handler)

        duration = request.request_time()
        start: Optional[float] = getattr(request, "_start_time", None)
        if start is None:
            start = time.time() - duration

        request_body: Optional[BodyTap] = None
        response_body: Optional[BodyTap] = None
        if s.log_body:
            body = request.body
            if body and isinstance(body, bytes):  # a @stream_request_body handler leaves b""
                request_body = BodyTap(s.max_body_size)
                request_body.feed(body)
            if tap is not None:
                response_body = tap.body

        transaction_id: Optional[str] = None
        if not s.disable_transaction_id:
            transaction_id = tap.transaction_id if tap is not None else None
            if transaction_id is None:
                transaction_id = _transaction_id(request.headers)

        response_headers = getattr(handler, "_headers", None)
        raw = RawCapture(
            method=request.method or "GET",
            uri=request.full_url(),
            request_time=start,
            response_time=start + duration,
            request_headers=list(request.headers.get_all()),
            request_body=request_body,
            response_status=handler.get_status(),
            response_headers=list(response_headers.get_all()) if response_headers is not None else (),
            response_body=response_body,
            peer_ip=request.remote_ip,
            transaction_id=transaction_id,
            log_body=s.log_body,
            weight=weight or None,
        )
        for name, field, fn in self._field_callbacks:
            setattr(raw, field, call_user(fn, name, handler))
        self.agent.capture(raw)

    # -- shipping ----------------------------------------------------------------------------------------------
