"""URLs of the Django app the reliability suite serves (``ROOT_URLCONF`` per test, through ``override_settings``)."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt
from rel_support import RESP_SECRETS


def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse("pong", content_type="text/plain")


@csrf_exempt
def echo(request: HttpRequest) -> HttpResponse:
    response = JsonResponse({"len": len(request.body), **RESP_SECRETS})
    response["X-Resp-Secret"] = "SEKRET-RH"
    return response


@csrf_exempt
def anything(request: HttpRequest) -> HttpResponse:
    """The fuzz target: answers from what it read (path, query, one header, the body) without ever failing."""
    body = request.body
    try:
        parsed = json.loads(body) is not None
    except (ValueError, RecursionError):
        parsed = False
    return JsonResponse(
        {
            "path": request.path,
            "q": sorted(request.GET.keys()),
            "len": len(body),
            "json": parsed,
            "odd": request.META.get("HTTP_X_ODD", ""),
        },
        status=200 if body[:1] != b"!" else 418,
    )


urlpatterns = [
    re_path(r"^ping$", ping),
    re_path(r"^echo$", echo),
    re_path(r"", anything),
]
