"""Fault injection: 500, 429 with Retry-After, delays and hangs, via the admin API and from Python."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any

import pytest

from moesif_collector import Collector


def test_error500_for_n_requests_then_ok(collector: Collector, client: Any, make_event: Any) -> None:
    collector.set_faults("error500", times=2)
    for _ in range(2):
        reply = client.post("/v1/events/batch", [make_event()])
        assert reply.status == 500
        assert "fault injected" in reply.json()["message"]
    assert collector.count_events() == 0
    assert client.post("/v1/events/batch", [make_event()]).status == 201  # back to ok by itself
    assert collector.count_events() == 1
    assert [r["fault"] for r in collector.requests()] == ["error500", "error500", None]


def test_status429_with_retry_after_via_admin_endpoint(collector: Collector, client: Any, make_event: Any) -> None:
    reply = client.request(
        "POST",
        "/_admin/faults",
        json.dumps({"mode": "status429", "retry_after": 7}).encode(),
        {"Content-Type": "application/json"},
    )
    assert reply.status == 200 and reply.json()["mode"] == "status429"
    assert client.get("/_admin/faults", app_id=None).json() == {
        "mode": "status429",
        "retry_after": 7,
        "delay": 0.0,
        "times": None,
        "scope": "ingest",
    }
    for path, payload in [("/v1/events/batch", [make_event()]), ("/v1/users", {"user_id": "u"})]:
        reply = client.post(path, payload)
        assert reply.status == 429 and reply.headers["retry-after"] == "7"
    # Config is not affected with the default scope, and the page still works.
    assert client.get("/v1/config").status == 200
    assert client.get("/api/stats", app_id=None).status == 200
    assert client.request("DELETE", "/_admin/faults").json()["mode"] == "ok"
    assert client.post("/v1/events/batch", [make_event()]).status == 201
    assert collector.count_events() == 1


def test_scope_all_affects_config(collector: Collector, client: Any) -> None:
    collector.set_faults("error500", scope="all")
    assert client.get("/v1/config").status == 500
    assert client.get("/v1/rules").status == 500
    collector.reset_faults()
    assert client.get("/v1/config").status == 200


def test_delay(collector: Collector, client: Any, make_event: Any) -> None:
    collector.set_faults(delay=0.3)
    started = time.monotonic()
    assert client.post("/v1/events/batch", [make_event()]).status == 201
    assert time.monotonic() - started >= 0.3
    collector.reset_faults()


def _raw_post(collector: Collector, timeout: float) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=timeout)
    conn.request(
        "POST",
        "/v1/events/batch",
        body=b"[]",
        headers={"X-Moesif-Application-Id": "x", "Content-Type": "application/json"},
    )
    return conn


def test_hang_until_reset(collector: Collector, client: Any, make_event: Any) -> None:
    collector.set_faults(hang=True)
    conn = _raw_post(collector, timeout=0.3)
    with pytest.raises((socket.timeout, TimeoutError)):
        conn.getresponse()  # accepted, never answered
    conn.close()
    # A request hanging in the background is closed without an answer when the fault is reset.
    background = _raw_post(collector, timeout=10)
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            outcome["status"] = background.getresponse().status
        except (http.client.RemoteDisconnected, ConnectionError) as exc:
            outcome["error"] = type(exc).__name__

    waiter = threading.Thread(target=wait)
    waiter.start()
    # Wait (polling, with a deadline) until the collector has logged the hung request.
    deadline = time.monotonic() + 5
    while sum(1 for r in collector.requests() if r["fault"] == "hang") < 2:
        assert time.monotonic() < deadline, "the hung request never reached the collector"
        time.sleep(0.01)
    collector.reset_faults()
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert outcome == {"error": "RemoteDisconnected"}
    background.close()
    assert client.post("/v1/events/batch", [make_event()]).status == 201


def test_stop_releases_hung_requests_promptly(make_event: Any) -> None:
    c = Collector().start()
    c.set_faults("hang")
    conn = _raw_post(c, timeout=10)
    deadline = time.monotonic() + 5
    while not any(r["fault"] == "hang" for r in c.requests()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    c.stop()
    assert time.monotonic() - started < 3
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "explode"},
        {"retry_after": -1},
        {"delay": "slow"},
        {"times": 0},
        {"scope": "x"},
        {"nope": 1},
        [],
    ],
)
def test_admin_rejects_invalid_faults(collector: Collector, client: Any, body: Any) -> None:
    reply = client.request("POST", "/_admin/faults", json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert reply.status == 400 and reply.json()["message"]
    assert collector.app.faults.settings.mode == "ok"


def test_python_api_validates(collector: Collector) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        collector.set_faults("boom")
