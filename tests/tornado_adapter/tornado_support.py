"""Helpers for the moesiftornado tests: a real Tornado HTTP server on 127.0.0.1 (its own IOLoop in a thread) and
checks of events against docs/wire.md. (Not named ``conftest``: test modules import it by this unique name.)"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

import tornado.httpserver
import tornado.netutil
import tornado.web

APP_ID = "tornado-test-app"
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


class TornadoServer:
    """``app`` served by a real ``HTTPServer`` on 127.0.0.1, on an IOLoop of its own in a daemon thread."""

    def __init__(self, app: tornado.web.Application, **server_kwargs: Any) -> None:
        self.app = app
        self.server_kwargs = server_kwargs
        self.sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port: int = self.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tornado-test-server", daemon=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        server = tornado.httpserver.HTTPServer(self.app, **self.server_kwargs)
        server.add_sockets(self.sockets)
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            server.stop()
            loop.run_until_complete(server.close_all_connections())
            loop.close()

    def start(self) -> TornadoServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Tornado test server did not start")
        return self

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the server's loop (thread-safe)."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)


def check_shape(event: dict[str, Any], before: Optional[float] = None, after: Optional[float] = None) -> None:
    """Every docs/wire.md key present, times in the wire format, in order, and (when given) within the test's window."""
    assert set(event) == EVENT_KEYS
    assert set(event["request"]) == REQUEST_KEYS
    assert set(event["response"]) == RESPONSE_KEYS
    req_t, resp_t = event["request"]["time"], event["response"]["time"]
    assert TIME_RE.match(req_t) and TIME_RE.match(resp_t), (req_t, resp_t)
    assert req_t <= resp_t
    assert event["direction"] == "Incoming"
    assert event["weight"] == 1
    assert event["blocked_by"] is None
    assert event["tags"] is None
    assert event["response"]["ip_address"] is None
    slack = timedelta(seconds=1)  # clock granularity only: these are wall-clock UTC instants
    if before is not None:
        assert parse_time(req_t) >= datetime.fromtimestamp(before, timezone.utc) - slack
    if after is not None:
        assert parse_time(resp_t) <= datetime.fromtimestamp(after, timezone.utc) + slack


def wait_for_requests(
    collector: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The collector's request-log rows matching ``predicate``, waiting (polling) until there is one."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in collector.requests() if predicate(r)]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)
