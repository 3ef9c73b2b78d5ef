"""The Django middleware (Django 1.10 and later): ``'moesifdjango.middleware.moesif_middleware'`` in ``MIDDLEWARE``.

One class serves both stacks, as Django's ``sync_and_async_middleware`` does: it is ``sync_capable`` and
``async_capable``, and when Django hands it an async ``get_response`` (ASGI with an async-capable stack) it marks
itself a coroutine function and runs on the event loop, so an async view never costs a thread switch for it. Under
WSGI it runs sync.

Settings come from ``settings.MOESIF_MIDDLEWARE``, validated once (a wrong key fails at start-up with a message
naming it); every middleware object of the process shares one agent (queue, workers, HTTP session) per settings
dict. ``update_user`` & co. work on any instance, as in the original's README (``moesif_middleware(None)``).

Behaviour, where the original was silent or wrong (see the package README):

- Request body: read up front only when its declared size is within ``MAX_BODY_SIZE`` (and Django's
  ``DATA_UPLOAD_MAX_MEMORY_SIZE``), as Django itself does on first ``request.body``; larger or chunked bodies are
  recorded as the app reads them, up to the cap, and never read by us.
- Streamed responses stream untouched; their body is captured up to the cap as it passes and the event is sent
  when the stream ends (response time = end of stream).
- User id: ``IDENTIFY_USER``; else the logged-in ``request.user.get_username()``; else the core's
  Authorization-header rules (JWT ``sub`` / Basic username). Session token: ``GET_SESSION_TOKEN``, else
  ``request.session.session_key``.
- An exception in the view is a 500 response by the time Django hands it to us: that 500 is recorded.

Sampling and governance (the server's ``/v1/config`` and ``/v1/rules``), before the view, as the WSGI original,
decided by the core (:mod:`moesif_core.preapp`) from what :meth:`~moesifdjango.recorder.Recorder.before` hands it:

- Nothing extra runs while the config samples every call and there are no rules (the default): one tuple read.
- Sampling: when the rate can be decided from the verb, path and client IP, it is decided before the view; a call
  that is not sampled costs no capture work (it still gets its ``X-Moesif-Transaction-Id``). When the rate needs the
  user, company or status, the core's worker decides after the response.
- Governance: the rules see the verb, URL, client IP, headers, the user (``IDENTIFY_USER`` called with ``response``
  ``None``; else ``request.user``, resolved before the view only when the request carries a session and never on
  the event loop; else the Authorization header), the company (``IDENTIFY_COMPANY``) and, for ``request.body.*``
  conditions, the JSON body only when it is already read (a small body with a declared length is read up front).
  A blocked request gets the rule's status, headers and body without the view being called, and its event carries
  ``blocked_by``; the headers of non-blocking rules are added to the view's response, replacing same-named ones.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Awaitable, Callable, Optional, Union

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseServerError
from django.http.response import HttpResponseBase

from moesif_core import (
    EarlyDecision,
    EventModel,
    EventRequestModel,
    EventResponseModel,
    FlushControl,
    MoesifAPIClient,
    ProfileHelpers,
)

from .config import MoesifSettingsError, agent_for, read_settings
from .recorder import Pending, Recorder, blocked_response

__all__ = [
    "EventModel",
    "EventRequestModel",
    "EventResponseModel",
    "MoesifAPIClient",
    "MoesifMiddleware",
    "MoesifSettingsError",
    "moesif_middleware",
]

logger = logging.getLogger("moesif")

GetResponse = Callable[[HttpRequest], Any]


class DjangoProfileHelpers(ProfileHelpers):
    """``update_user`` & co.; like the original, a profile may also be given as a JSON string."""

    def _profile_call(self, name: str, payload: Any) -> Optional[bool]:
        if isinstance(payload, (str, bytes)):
            try:
                payload = json.loads(payload)
            except ValueError:
                logger.error(
                    "moesif: %s not sent: a profile must be a dict or a JSON object string; got a string "
                    "that is not JSON.",
                    name,
                )
                return False
        return super()._profile_call(name, payload)


class moesif_middleware(DjangoProfileHelpers, FlushControl):
    """Logs each API call to Moesif. Add ``'moesifdjango.middleware.moesif_middleware'`` to ``MIDDLEWARE`` after
    ``SessionMiddleware`` and ``AuthenticationMiddleware``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Optional[GetResponse] = None) -> None:
        self.get_response = get_response
        self.settings, self.agent = agent_for(read_settings())
        self.client = self.agent.client
        self._recorder = Recorder(self.settings, self.agent)
        self.async_mode = get_response is not None and iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Union[HttpResponseBase, Awaitable[HttpResponseBase]]:
        if self.async_mode:
            return self.__acall__(request)
        get_response = self.get_response
        if get_response is None:
            raise TypeError("moesif_middleware(None) is for update_user & co.; Django passes get_response.")
        recorder = self._recorder
        pending: Optional[Pending]
        blocked: Optional[EarlyDecision]
        # plain try/except rather than capture_internal_exceptions() on this path: same effect, ~2 us less each
        try:
            pending, blocked = recorder.before(request)
        except Exception:
            pending = blocked = None
            logger.warning("moesif: error while reading the request; the request is not affected", exc_info=True)
        if blocked is not None:  # a governance rule blocks the request: the view is not called
            answer = blocked_response(blocked)
            if pending is not None:
                self._finish_sync(request, answer, pending, time.time())
            return answer
        try:
            response: HttpResponseBase = get_response(request)
        except Exception:
            # Django turns view errors into responses below us; this is DEBUG_PROPAGATE_EXCEPTIONS or a broken
            # handler. Record the 500 the client will get, then let the exception go on.
            if pending is not None:
                self._finish_sync(request, HttpResponseServerError(), pending, time.time())
            raise
        if pending is not None:
            try:  # _finish_sync() written out: this is every request's path
                recorder.record(request, response, pending, time.time())
            except Exception:
                logger.warning("moesif: error while capturing the event; the request is not affected", exc_info=True)
        return response

    def _finish_sync(self, request: HttpRequest, response: HttpResponseBase, pending: Pending, now: float) -> None:
        try:
            self._recorder.record(request, response, pending, now)
        except Exception:
            logger.warning("moesif: error while capturing the event; the request is not affected", exc_info=True)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Any = self.get_response
        recorder = self._recorder
        pending: Optional[Pending]
        blocked: Optional[EarlyDecision]
        try:
            pending, blocked = await recorder.abefore(request)
        except Exception:
            pending = blocked = None
            logger.warning("moesif: error while reading the request; the request is not affected", exc_info=True)
        if blocked is not None:
            answer = blocked_response(blocked)
            if pending is not None:
                await self._finish_async(request, answer, pending, time.time())
            return answer
        try:
            response: HttpResponseBase = await get_response(request)
        except Exception:
            if pending is not None:
                await self._finish_async(request, HttpResponseServerError(), pending, time.time())
            raise
        if pending is not None:
            await self._finish_async(request, response, pending, time.time())
        return response

    async def _finish_async(
        self, request: HttpRequest, response: HttpResponseBase, pending: Pending, now: float
    ) -> None:
        recorder = self._recorder
        try:
            if not recorder.apply_extras(response, pending):
                return
            values = await recorder.avalues(request, response)
            if values is not None:
                # On the event loop the ORM is off limits: only a request.user the app already resolved is used.
                recorder.finish(request, response, pending, values, now, False)
        except Exception:
            logger.warning("moesif: error while capturing the event; the request is not affected", exc_info=True)


#: The README's profile examples write ``MoesifMiddleware(None)``; the original module had no such name.
MoesifMiddleware = moesif_middleware
