from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import djt_views as v
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.decorators import decorator_from_middleware

from moesifdjango.middleware_pre19 import MoesifMiddlewarePre19


def pre19(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``decorator_from_middleware(MoesifMiddlewarePre19)`` around ``view``, applied per request so each test's
    ``MOESIF_MIDDLEWARE`` (read when the middleware is built) is the one in force."""

    @functools.wraps(view)  # keeps csrf_exempt
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return decorator_from_middleware(MoesifMiddlewarePre19)(view)(request, *args, **kwargs)

    return wrapper


urlpatterns = [
    path("hello", v.hello),
    path("echo", v.echo),
    path("read", v.read_stream),
    path("ignore", v.ignore_body),
    path("upload", v.upload),
    path("form", v.form),
    path("login", v.login_view),
    path("logout", v.logout_view),
    path("whoami", v.whoami),
    path("call-out", v.call_out),
    path("stream", v.stream),
    path("file", v.file_download),
    path("boom", v.boom),
    path("text", v.head_or_get),
    path("async/json", v.async_json),
    path("async/echo", v.async_echo),
    path("async/whoami", v.async_whoami),
    path("async/stream", v.async_stream),
    path("async/boom", v.async_boom),
    # the old-style middleware driven through Django's decorator_from_middleware (process_request/_response)
    path("pre19/echo", pre19(v.echo)),
    path("pre19/hello", pre19(v.hello)),
    path("pre19/whoami", pre19(v.whoami)),
    # governance: views that count their calls
    path("gov/<str:name>", v.counted),
    path("async/gov/<str:name>", v.async_counted),
    path("pre19/gov/<str:name>", pre19(v.counted)),
]
