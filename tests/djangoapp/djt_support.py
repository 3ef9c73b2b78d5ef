"""Real servers on 127.0.0.1 for the Django app under test, and the wire-format checks.

``serve("wsgi", ...)`` runs Django's own WSGI handler under the threaded server ``runserver`` uses;
``serve("asgi", ...)`` runs Django's ASGI handler under uvicorn. Both in this process (so a test can look at what
the app saw), each in a background thread, with the settings given for that test only.
"""

from __future__ import annotations

import base64
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from django.test.utils import override_settings

KINDS = ("wsgi", "asgi")

#: The README's recommended stack: moesif after sessions and auth.
STACK = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "moesifdjango.middleware.moesif_middleware",
]

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
EVENT_KEYS = {
    "request",
    "response",
    "user_id",
    "company_id",
    "session_token",
    "tags",
    "metadata",
    "direction",
    "weight",
    "blocked_by",
    "transaction_id",
}
REQUEST_KEYS = {"time", "uri", "verb", "api_version", "ip_address", "headers", "body", "transfer_encoding"}
RESPONSE_KEYS = {"time", "status", "ip_address", "headers", "body", "transfer_encoding"}


def options(collector: Any, **extra: Any) -> dict[str, Any]:
    """A ``MOESIF_MIDDLEWARE`` dict pointed at the test's collector, shipping partial batches quickly."""
    return {"APPLICATION_ID": "django-test-app", "BASE_URI": collector.url, "EVENT_BATCH_TIMEOUT": 0.05, **extra}


@contextmanager
def serve(kind: str, moesif: Any, middleware: list[str] | None = None, **django_settings: Any) -> Iterator[str]:
    """Serve the test app with ``MOESIF_MIDDLEWARE = moesif``; yields the base URL."""
    with override_settings(
        MOESIF_MIDDLEWARE=moesif, MIDDLEWARE=STACK if middleware is None else middleware, **django_settings
    ):
        if kind == "wsgi":
            with _wsgi_server() as url:
                yield url
        elif kind == "asgi":
            with _asgi_server() as url:
                yield url
        else:
            raise ValueError(kind)


@contextmanager
def _wsgi_server() -> Iterator[str]:
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = WSGIHandler()
    httpd = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
    httpd.set_app(handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@contextmanager
def _asgi_server() -> Iterator[str]:
    import uvicorn
    from django.core.handlers.asgi import ASGIHandler

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(ASGIHandler(), lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# -- reading events ------------------------------------------------------------------------------------------


def path_of(event: dict[str, Any]) -> str:
    return str(urlsplit(event["request"]["uri"]).path)


def wait_for_path(collector: Any, path: str, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The events for ``path`` once at least ``n`` of them arrived (poll with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in collector.events() if path_of(e) == path]
        if len(found) >= n:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"expected {n} event(s) for {path}, got {len(found)}: {[path_of(e) for e in collector.events()]}"
            )
        time.sleep(0.02)


def one(collector: Any, path: str) -> dict[str, Any]:
    return wait_for_path(collector, path)[-1]


def header(headers: dict[str, Any], name: str) -> Any:
    """A header value by case-insensitive name (``None`` if absent)."""
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def b64(body: Any) -> bytes:
    return base64.b64decode(body)


def check_event(event: dict[str, Any], *, verb: str, uri: str, status: int) -> None:
    """The parts of docs/wire.md every incoming event must satisfy."""
    assert set(event) == EVENT_KEYS
    req, resp = event["request"], event["response"]
    assert set(req) == REQUEST_KEYS
    assert set(resp) == RESPONSE_KEYS
    assert req["verb"] == verb
    assert req["uri"] == uri
    assert resp["status"] == status
    assert TIME_RE.match(req["time"]), req["time"]
    assert TIME_RE.match(resp["time"]), resp["time"]
    assert req["time"] <= resp["time"]
    assert req["ip_address"] == "127.0.0.1"
    assert resp["ip_address"] is None
    assert isinstance(req["headers"], dict) and isinstance(resp["headers"], dict)
    assert header(req["headers"], "Host") == urlsplit(uri).netloc
    assert event["direction"] == "Incoming"
    assert event["weight"] == 1
    assert event["blocked_by"] is None
    assert event["tags"] is None
    tid = event["transaction_id"]
    assert isinstance(tid, str) and tid
    assert header(req["headers"], "X-Moesif-Transaction-Id") == tid
    assert header(resp["headers"], "X-Moesif-Transaction-Id") == tid
    for side in (req, resp):
        if side["body"] is None:
            assert side["transfer_encoding"] is None
        else:
            assert side["transfer_encoding"] in ("json", "base64")
