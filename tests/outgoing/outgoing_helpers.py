"""Helpers for the outgoing capture tests: the loopback third-party API, and capture against the collector."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import aiohttp
import httpx
import requests

import moesifpythonrequest

#: The functions capture wraps, as they were before any test ran.
ORIGINALS = {
    (requests.Session, "send"): requests.Session.__dict__["send"],
    (requests.Response, "iter_content"): requests.Response.__dict__["iter_content"],
    (requests.Response, "close"): requests.Response.__dict__["close"],
    (httpx.Client, "send"): httpx.Client.__dict__["send"],
    (httpx.AsyncClient, "send"): httpx.AsyncClient.__dict__["send"],
    (httpx.Response, "iter_bytes"): httpx.Response.__dict__["iter_bytes"],
    (httpx.Response, "aiter_bytes"): httpx.Response.__dict__["aiter_bytes"],
    (httpx.Response, "close"): httpx.Response.__dict__["close"],
    (httpx.Response, "aclose"): httpx.Response.__dict__["aclose"],
    (aiohttp.ClientSession, "_request"): aiohttp.ClientSession.__dict__["_request"],
    (aiohttp.ClientResponse, "release"): aiohttp.ClientResponse.__dict__["release"],
    (aiohttp.ClientResponse, "close"): aiohttp.ClientResponse.__dict__["close"],
}


def assert_unpatched() -> None:
    for (owner, name), original in ORIGINALS.items():
        assert owner.__dict__[name] is original, f"{owner.__name__}.{name} was not restored"


def pattern(n: int) -> bytes:
    """``n`` bytes of a recognisable, non-JSON pattern."""
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _APIServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _chunked(self, chunks: Iterator[bytes], content_type: str = "application/octet-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for chunk in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _route(self) -> None:
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = self._body()
        path = parts.path
        self.server.hits.append((self.command, self.path))
        if path == "/json":
            doc = {
                "ok": True,
                "method": self.command,
                "path": self.path,
                "received": len(body),
                "token": "secret-token",
            }
            self._send(200, json.dumps(doc).encode(), headers={"X-Api": "third-party"})
        elif path == "/echo":
            self._send(int(q.get("status", 200)), body, self.headers.get("Content-Type") or "application/octet-stream")
        elif path == "/status":
            self._send(int(q["code"]), json.dumps({"error": int(q["code"])}).encode())
        elif path == "/redirect":
            hops = int(q.get("hops", 1))
            target = "/json" if hops <= 1 else f"/redirect?hops={hops - 1}"
            self._send(302, b"moved", "text/plain", headers={"Location": target})
        elif path == "/bytes":
            n, size = int(q.get("n", 1000)), int(q.get("chunk", 1000))
            data = pattern(n)
            self._chunked(data[i : i + size] for i in range(0, n, size))
        elif path == "/lines":
            self._chunked((f"line {i} é\n".encode() for i in range(int(q.get("n", 5)))), "text/plain; charset=utf-8")
        elif path == "/gate":
            # headers and a first chunk now, the rest only when the test opens the gate (or after 5 s)
            gate = self.server.gate(q["id"])

            def chunks() -> Iterator[bytes]:
                yield b"first;"
                gate.wait(5)
                yield b"second"

            self._chunked(chunks(), "text/plain")
        elif path == "/sleep":
            time.sleep(float(q.get("s", 1)))
            self._send(200, b'{"slept": true}')
        elif path == "/gzip":
            data = gzip.compress(json.dumps({"zipped": True}).encode())
            self._send(200, data, headers={"Content-Encoding": "gzip"})
        else:
            self._send(404, b'{"error": "not found"}')

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _route


class _APIServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[tuple[str, str]] = []
        self._gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def gate(self, name: str) -> threading.Event:
        with self._lock:
            return self._gates.setdefault(name, threading.Event())


class ThirdPartyAPI:
    def __init__(self) -> None:
        self.server = _APIServer()
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="third-party-api", daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def open_gate(self, name: str) -> None:
        self.server.gate(name).set()

    def close(self) -> None:
        for gate in list(self.server._gates.values()):
            gate.set()
        self.server.shutdown()
        self.server.server_close()


class Capture:
    """Starts capture against the collector; ``events()`` waits for what was sent."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def options(self, **extra: Any) -> dict[str, Any]:
        return {"APPLICATION_ID": "outgoing-test", "BASE_URI": self.collector.url, "EVENT_BATCH_TIMEOUT": 0.05, **extra}

    def start(self, **extra: Any) -> None:
        from moesifpythonrequest.start_capture.start_capture import StartCapture

        assert StartCapture().start_capture_outgoing(self.options(**extra)) is True

    def flush(self) -> None:
        assert moesifpythonrequest.flush(10)

    def events(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Exactly ``n`` events: waits for them, flushes, and checks no more arrived."""
        if n:
            self.collector.wait_for_events(n, timeout=timeout)
        self.flush()
        events: list[dict[str, Any]] = self.collector.events()
        assert len(events) == n, [(e["request"]["verb"], e["request"]["uri"]) for e in events]
        return events


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
