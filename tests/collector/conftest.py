"""Shared fixtures for the collector tests: a running collector and a raw HTTP client.

Everything talks real HTTP over 127.0.0.1; nothing is mocked.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from moesif_collector import Collector
from moesif_collector.loadgen import sample_event

APP_ID = "test-app-id"


class Reply:
    """One HTTP answer: status, headers (lower-case names) and body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:200]!r})"


class Client:
    """A keep-alive HTTP/1.1 client for one collector, with helpers for the Moesif API."""

    def __init__(self, url: str) -> None:
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        self.host = host
        self.port = int(port)
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def request(
        self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict[str, str]] = None
    ) -> Reply:
        self.conn.request(method, path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        data = resp.read()
        reply = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        if reply.headers.get("connection", "").lower() == "close":
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        return reply

    def post(
        self,
        path: str,
        payload: Any = None,
        *,
        raw: Optional[bytes] = None,
        use_gzip: bool = True,
        app_id: Optional[str] = APP_ID,
        content_type: Optional[str] = "application/json; charset=utf-8",
        extra: Optional[dict[str, str]] = None,
    ) -> Reply:
        body = raw if raw is not None else json.dumps(payload).encode()
        headers: dict[str, str] = {}
        if use_gzip and raw is None:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if content_type is not None:
            headers["Content-Type"] = content_type
        if app_id is not None:
            headers["X-Moesif-Application-Id"] = app_id
        headers.update(extra or {})
        return self.request("POST", path, body, headers)

    def get(self, path: str, app_id: Optional[str] = APP_ID) -> Reply:
        return self.request("GET", path, None, {"X-Moesif-Application-Id": app_id} if app_id else {})

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as running:
        yield running


@pytest.fixture
def client(collector: Collector) -> Iterator[Client]:
    c = Client(collector.url)
    yield c
    c.close()


@pytest.fixture
def make_event() -> Any:
    """Factory for realistic events; keyword arguments override top-level keys."""

    def make(index: int = 0, **overrides: Any) -> dict[str, Any]:
        event = sample_event(index)
        event.update(overrides)
        return event

    return make


class LineReader:
    """Reads a subprocess's stdout lines in a thread so tests can wait for a line with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = 10.0) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout} s (exit code {self.proc.poll()})") from None


def cli(*args: str) -> list[str]:
    """Command line for the collector CLI, run with this interpreter."""
    return [sys.executable, "-m", "moesif_collector", *args]


def start_serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], LineReader, str]:
    """Start ``serve --port 0`` in a subprocess and return it, its line reader and its URL."""
    proc = subprocess.Popen(
        cli("serve", "--port", "0", "--db", str(tmp_path / "c.db"), *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    reader = LineReader(proc)
    first = reader.next_line(timeout=15)
    prefix = "moesif-collector listening on "
    assert first.startswith(prefix), first
    return proc, reader, first[len(prefix) :]


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02, message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout} s (last value: {value!r})")
        time.sleep(interval)


@pytest.fixture
def helpers() -> Any:
    """Module-free access to the helpers above (test files do not import conftest)."""

    class H:
        Client = Client
        LineReader = LineReader
        cli = staticmethod(cli)
        start_serve = staticmethod(start_serve)
        wait_until = staticmethod(wait_until)

    return H
