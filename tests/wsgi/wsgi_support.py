"""Helpers for the moesifwsgi tests: real servers on 127.0.0.1, a raw HTTP client, event checks."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

HERE = Path(__file__).resolve().parent

#: ``{"alg": "HS256"}.{"sub": "user-42", "name": "Alice"}.sig``, URL-safe base64 without padding.
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIiwibmFtZSI6IkFsaWNlIn0.c2ln"
BASIC_ALICE = "Basic " + base64.b64encode(b"alice:pw").decode()
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


def settings_for(collector: Any, **extra: Any) -> Dict[str, Any]:
    """Settings pointing at the test collector, with a short batch timeout so events arrive quickly."""
    s: Dict[str, Any] = {"APPLICATION_ID": "wsgi-test-app", "BASE_URI": collector.url, "EVENT_BATCH_TIMEOUT": 0.05}
    s.update(extra)
    return s


# -- in-process server ---------------------------------------------------------------------------------------------


class Server:
    def __init__(self, app: Any) -> None:
        from werkzeug.serving import make_server

        self.httpd = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.httpd.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@contextmanager
def serve(app: Any) -> Iterator[Server]:
    """Serve ``app`` with werkzeug's threaded server on 127.0.0.1 (free port) in this process."""
    with Server(app) as server:
        yield server


# -- raw HTTP -----------------------------------------------------------------------------------------------------


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` as is (it should ask for ``Connection: close``) and return every byte of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def split_response(raw: bytes) -> Tuple[bytes, List[Tuple[bytes, bytes]], bytes]:
    """``(status line, [(name, value)], body)`` of a raw HTTP/1.x response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name, value.strip()))
    return lines[0], headers, body


# -- events -------------------------------------------------------------------------------------------------------


def check_shape(event: Dict[str, Any]) -> None:
    """Every key of docs/wire.md is present, times are UTC ms, the transaction ids agree."""
    assert set(event) == EVENT_KEYS
    assert set(event["request"]) == REQUEST_KEYS
    assert set(event["response"]) == RESPONSE_KEYS
    assert TIME_RE.match(event["request"]["time"])
    assert TIME_RE.match(event["response"]["time"])
    assert event["response"]["time"] >= event["request"]["time"]
    assert event["direction"] == "Incoming"
    tx = event["transaction_id"]
    assert isinstance(tx, str) and tx
    if "X-Moesif-Transaction-Id" in event["request"]["headers"]:  # absent with DISABLED_TRANSACTION_ID
        assert event["request"]["headers"]["X-Moesif-Transaction-Id"] == tx
        if event["response"]["status"] != 500 or "X-Moesif-Transaction-Id" in event["response"]["headers"]:
            assert event["response"]["headers"]["X-Moesif-Transaction-Id"] == tx


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def one_event(collector: Any, mw: Any, timeout: float = 10.0) -> Dict[str, Any]:
    mw.flush(timeout)
    events = collector.wait_for_events(1, timeout)
    assert len(events) == 1, events
    check_shape(events[0])
    return events[0]


def events_for(collector: Any, mw: Any, n: int, timeout: float = 10.0) -> List[Dict[str, Any]]:
    # The server ends a call (and the middleware queues its capture) just after the client has its last byte:
    # wait for the n captures to be queued, so the flush covers them.
    deadline = time.monotonic() + timeout
    while mw.agent.snapshot()["queued"] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    mw.flush(timeout)
    events = collector.wait_for_events(n, timeout)
    assert len(events) == n, [e["request"]["uri"] for e in events]
    for e in events:
        check_shape(e)
    return events


# -- direct WSGI calls (no server) ---------------------------------------------------------------------------------


class Captured:
    """Replaces ``mw.agent.capture``: keeps the raw captures and builds their wire events with the real builder."""

    def __init__(self, mw: Any) -> None:
        self.mw = mw
        self.raws: List[Any] = []
        mw.agent.capture = self._capture

    def _capture(self, raw: Any) -> bool:
        self.raws.append(raw)
        return True

    def events(self) -> List[Dict[str, Any]]:
        out = []
        for raw in self.raws:
            event = self.mw.agent.builder.build(raw)
            assert event is not None
            out.append(event)
        return out

    def event(self) -> Dict[str, Any]:
        events = self.events()
        assert len(events) == 1, events
        return events[0]


def environ_for(
    method: str = "GET",
    path: str = "/",
    query: str = "",
    body: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
    **extra: Any,
) -> Dict[str, Any]:
    env: Dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.10",
        "HTTP_HOST": "api.example.com",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body is not None:
        env["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    env.update(extra)
    return env


class StartResponse:
    def __init__(self) -> None:
        self.calls: List[Tuple[str, List[Tuple[str, str]], Any]] = []
        self.written: List[bytes] = []

    def __call__(self, status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        self.calls.append((status, headers, exc_info))
        return self.written.append

    @property
    def status(self) -> str:
        return self.calls[-1][0]

    @property
    def headers(self) -> List[Tuple[str, str]]:
        return self.calls[-1][1]


def call_wsgi(app: Any, environ: Dict[str, Any]) -> Tuple[StartResponse, List[bytes]]:
    """Call like a server: start_response, iterate, close. Returns the start_response record and the chunks."""
    sr = StartResponse()
    result = app(environ, sr)
    chunks: List[bytes] = []
    try:
        for chunk in result:
            chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return sr, chunks


# -- subprocess servers --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0, proc: Optional[subprocess.Popen[bytes]] = None) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def gunicorn(framework: str, base_uri: str, *args: str, wrap: bool = True, **env_extra: str) -> Iterator[str]:
    """Run ``wsgi_apps:serving_app()`` under gunicorn on 127.0.0.1; yields its URL."""
    port = free_port()
    env = dict(
        os.environ,
        WSGI_FRAMEWORK=framework,
        MOESIF_BASE_URI=base_uri,
        MOESIF_WRAP="1" if wrap else "0",
        PYTHONUNBUFFERED="1",
        **env_extra,
    )
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--chdir",
        str(HERE),
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--graceful-timeout",
        "3",
        *args,
        "wsgi_apps:serving_app()",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/_maxrss", proc=proc)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # gunicorn's quick shutdown (SIGTERM waits out keep-alive connections)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


def get_json(url: str) -> Any:
    import requests

    r = requests.get(url, timeout=10)
    r.raise_for_status()
    return json.loads(r.content)
