"""Views the tests call through real servers; each reports what the app saw so tests can check we broke nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import requests
from asgiref.sync import sync_to_async
from django.contrib.auth import authenticate, login, logout
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.middleware.csrf import get_token
from django.views.decorators.csrf import csrf_exempt

#: Thread idents seen by async views, keyed by a test-chosen marker (see test_django_async).
SEEN_THREADS: dict[str, int] = {}

STREAM_CHUNKS = [b"chunk-%03d;" % i for i in range(50)]

_FILE_DIR = tempfile.mkdtemp(prefix="moesifdjango-files-")
FILE_PATH = os.path.join(_FILE_DIR, "report.csv")
FILE_BYTES = b"".join(b"%06d,row,%s\n" % (i, b"x" * 40) for i in range(4000))  # ~200 KB
with open(FILE_PATH, "wb") as fh:
    fh.write(FILE_BYTES)


def hello(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"hello": "world"})


@csrf_exempt
def echo(request: HttpRequest) -> HttpResponse:
    """POST JSON (any size): answers with what the view read."""
    data = request.body
    try:
        parsed: Any = json.loads(data) if data else None
    except ValueError:
        parsed = None
    return JsonResponse({"len": len(data), "sha": hashlib.sha256(data).hexdigest(), "parsed": parsed})


@csrf_exempt
def read_stream(request: HttpRequest) -> HttpResponse:
    """Reads the body with request.read() in chunks, as a streaming consumer would."""
    h = hashlib.sha256()
    n = 0
    while True:
        chunk = request.read(65536)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    return JsonResponse({"len": n, "sha": h.hexdigest()})


@csrf_exempt
def ignore_body(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=204)


@csrf_exempt
def upload(request: HttpRequest) -> HttpResponse:
    """multipart: request.POST and request.FILES, with the files' sizes and digests."""
    files = {}
    for name, f in request.FILES.items():
        h = hashlib.sha256()
        for chunk in f.chunks():
            h.update(chunk)
        files[name] = {"size": f.size, "sha": h.hexdigest(), "in_memory": not hasattr(f, "temporary_file_path")}
    return JsonResponse({"post": request.POST.dict(), "files": files})


def form(request: HttpRequest) -> HttpResponse:
    """A CSRF-protected HTML form: GET shows it (with the token), POST reads request.POST."""
    if request.method == "POST":
        return HttpResponse(f"thanks {request.POST.get('name', '')}", content_type="text/plain")
    token = get_token(request)
    return HttpResponse(
        f'<form method="post"><input type="hidden" name="csrfmiddlewaretoken" value="{token}">'
        '<input name="name"><button>go</button></form>'
    )


@csrf_exempt
def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.POST.get("username"), password=request.POST.get("password"))
    if user is None:
        return HttpResponseBadRequest("bad credentials")
    login(request, user)
    return JsonResponse({"user": user.get_username()})


def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return JsonResponse({"user": None})


def whoami(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": request.user.get_username() if request.user.is_authenticated else None})


def call_out(request: HttpRequest) -> HttpResponse:
    """An outgoing call with requests (for CAPTURE_OUTGOING_REQUESTS), to this same server."""
    r = requests.get(f"{request.scheme}://{request.get_host()}/hello?from=outgoing", timeout=5)
    return JsonResponse({"outgoing_status": r.status_code})


def stream(request: HttpRequest) -> HttpResponse:
    def gen() -> Iterator[bytes]:
        yield from STREAM_CHUNKS

    return StreamingHttpResponse(gen(), content_type="text/plain")


def file_download(request: HttpRequest) -> HttpResponse:
    return FileResponse(open(FILE_PATH, "rb"), as_attachment=True, filename="report.csv")


def boom(request: HttpRequest) -> HttpResponse:
    raise ValueError("the view failed")


def head_or_get(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"body-for-get", content_type="text/plain")


async def async_json(request: HttpRequest) -> HttpResponse:
    marker = request.GET.get("marker", "")
    SEEN_THREADS[marker] = threading.get_ident()
    await asyncio.sleep(0)
    return JsonResponse({"async": True, "marker": marker})


async def async_echo(request: HttpRequest) -> HttpResponse:
    data = request.body
    return JsonResponse({"len": len(data), "parsed": json.loads(data) if data else None})


async_echo.csrf_exempt = True  # type: ignore[attr-defined]  # Django 4.2's @csrf_exempt cannot wrap async views


async def async_whoami(request: HttpRequest) -> HttpResponse:
    if hasattr(request, "auser"):  # Django 5
        user = await request.auser()
    else:  # Django 4.2: resolve the lazy user in a thread, as Django's docs say
        user = await sync_to_async(lambda: request.user if request.user.is_authenticated else None)()
    name = user.get_username() if user is not None and user.is_authenticated else None
    return JsonResponse({"user": name})


async def async_stream(request: HttpRequest) -> HttpResponse:
    async def agen() -> AsyncIterator[bytes]:
        for c in STREAM_CHUNKS:
            await asyncio.sleep(0)
            yield c

    return StreamingHttpResponse(agen(), content_type="text/plain")


async def async_boom(request: HttpRequest) -> HttpResponse:
    raise ValueError("the async view failed")


#: How many times each ``gov/<name>`` view ran (governance tests check blocked calls never reach the view).
CALLS: dict[str, int] = {}


def counted(request: HttpRequest, name: str) -> HttpResponse:
    CALLS[name] = CALLS.get(name, 0) + 1
    return JsonResponse({"counted": name})


async def async_counted(request: HttpRequest, name: str) -> HttpResponse:
    CALLS[name] = CALLS.get(name, 0) + 1
    return JsonResponse({"counted": name})
