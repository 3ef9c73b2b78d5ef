"""The old-style middleware for Django 1.9 and older: ``'moesifdjango.middleware_pre19.MoesifMiddlewarePre19'`` in
``MIDDLEWARE_CLASSES``.

Old Django builds it with no arguments and calls ``process_request(request)`` before the view and
``process_response(request, response)`` after it (for every response, error pages included). It yields the same
events as :class:`moesifdjango.middleware.moesif_middleware`: the same settings, agent and translation.

How it is tested: a modern Django has no ``MIDDLEWARE_CLASSES``, so the tests drive ``process_request`` and
``process_response`` through Django's own request machinery in the two ways a modern Django still offers:
``django.utils.decorators.decorator_from_middleware(MoesifMiddlewarePre19)`` around a view (Django calls the hooks
around the view exactly as the old handler did), and the class listed in ``MIDDLEWARE``, where it behaves like
Django's ``MiddlewareMixin`` adapter for old-style middleware (it accepts ``get_response`` and calls the two hooks
around it). Both run under a real WSGI and ASGI server in the tests.

Sampling and governance apply as in :mod:`moesifdjango.middleware` (sync only): ``process_request`` samples, and
returns the rule's response for a blocked request, so the view is not called.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from moesif_core import EarlyDecision, FlushControl, capture_internal_exceptions

from .config import agent_for, read_settings
from .middleware import DjangoProfileHelpers
from .recorder import Pending, Recorder, blocked_response

__all__ = ["MoesifMiddlewarePre19"]

#: Where ``process_request`` leaves its state for ``process_response`` (one request, one object).
_STATE_ATTR = "_moesif_pending"
#: The state once a blocked request's event was recorded by ``process_request``.
_DONE = object()


class MoesifMiddlewarePre19(DjangoProfileHelpers, FlushControl):
    """Logs each API call to Moesif, as an old-style (``MIDDLEWARE_CLASSES``) middleware."""

    sync_capable = True
    async_capable = False  # listed in MIDDLEWARE under ASGI, Django adapts it like any old-style middleware

    def __init__(self, get_response: Optional[Callable[[HttpRequest], Any]] = None) -> None:
        self.get_response = get_response
        self.settings, self.agent = agent_for(read_settings())
        self.client = self.agent.client
        self._recorder = Recorder(self.settings, self.agent)

    def process_request(self, request: HttpRequest) -> Optional[HttpResponseBase]:
        blocked: Optional[EarlyDecision] = None
        pending: Optional[Pending] = None
        with capture_internal_exceptions("reading the request"):
            pending, blocked = self._recorder.before(request)
            setattr(request, _STATE_ATTR, pending)
        if blocked is None or pending is None:
            return None
        # Blocked: answer now, without the view. The event is recorded here, as decorator_from_middleware does not
        # call process_response for a response process_request returned (old Django's handler does).
        answer = blocked_response(blocked)
        with capture_internal_exceptions("capturing the event"):
            setattr(request, _STATE_ATTR, _DONE)
            self._recorder.record(request, answer, pending, time.time())
        return answer

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        now = time.time()
        with capture_internal_exceptions("capturing the event"):
            pending: Any = request.__dict__.pop(_STATE_ATTR, None)
            if pending is _DONE:  # blocked by a rule: recorded in process_request
                return response
            if pending is None:  # an earlier middleware answered before our process_request ran
                pending = self._recorder.begin(request)
                pending.request_time = now
            self._recorder.record(request, response, pending, now)
        return response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Listed in ``MIDDLEWARE`` (Django 1.10+): the two hooks around ``get_response``, as ``MiddlewareMixin``."""
        if self.get_response is None:
            raise TypeError(
                "MoesifMiddlewarePre19() was built without get_response; list it in MIDDLEWARE_CLASSES "
                "(Django <= 1.9) or use moesifdjango.middleware.moesif_middleware."
            )
        response: Optional[HttpResponseBase] = self.process_request(request)
        if response is None:
            response = self.get_response(request)
        return self.process_response(request, response)
