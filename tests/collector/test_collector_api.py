"""The /v1 ingestion API: every endpoint, gzip and plain, auth, and clean refusal of bad input."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest

from moesif_collector import Collector

PROFILE_CASES = [
    ("/v1/users", {"user_id": "u1", "company_id": "c1", "metadata": {"email": "a@example.com"}}, "users"),
    ("/v1/companies", {"company_id": "c1", "metadata": {"plan": "pro"}}, "companies"),
    ("/v1/subscriptions", {"subscription_id": "s1", "company_id": "c1", "status": "active"}, "subscriptions"),
]


@pytest.mark.parametrize("use_gzip", [True, False], ids=["gzip", "plain"])
def test_events_batch_stored_with_etag(collector: Collector, client: Any, make_event: Any, use_gzip: bool) -> None:
    events = [make_event(i) for i in range(5)]
    reply = client.post("/v1/events/batch", events, use_gzip=use_gzip)
    assert reply.status == 201, reply
    assert reply.json() == {}
    assert reply.headers["content-type"].startswith("application/json")
    config = client.get("/v1/config")
    assert reply.headers["x-moesif-config-etag"] == config.headers["x-moesif-config-etag"] != ""
    assert collector.count_events() == 5
    assert collector.events() == events  # stored exactly as sent, in order


@pytest.mark.parametrize("use_gzip", [True, False], ids=["gzip", "plain"])
def test_single_event(collector: Collector, client: Any, make_event: Any, use_gzip: bool) -> None:
    event = make_event(3, user_id="alice", company_id="acme")
    reply = client.post("/v1/events", event, use_gzip=use_gzip)
    assert reply.status == 201, reply
    assert "x-moesif-config-etag" in reply.headers
    assert collector.events() == [event]


@pytest.mark.parametrize("use_gzip", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize(("path", "item", "kind"), PROFILE_CASES, ids=[c[2] for c in PROFILE_CASES])
def test_profiles_single_and_batch(
    collector: Collector, client: Any, path: str, item: dict[str, Any], kind: str, use_gzip: bool
) -> None:
    assert client.post(path, item, use_gzip=use_gzip).status == 201
    second = json.loads(json.dumps(item))
    id_key = {"users": "user_id", "companies": "company_id", "subscriptions": "subscription_id"}[kind]
    second[id_key] = "second"
    updated = {**item, "metadata": {"updated": True}}
    reply = client.post(path + "/batch", [second, updated], use_gzip=use_gzip)
    assert reply.status == 201, reply
    stored = getattr(collector, kind)()
    # Upserted by id: the first item was replaced by its update, the second added.
    assert sorted(stored, key=lambda p: str(p[id_key])) == sorted([updated, second], key=lambda p: str(p[id_key]))


def test_event_columns(collector: Collector, client: Any, make_event: Any) -> None:
    event = make_event(0, user_id="user-42", company_id="acme")
    event["request"]["uri"] = "http://localhost/echo/1?a=1&b=two"
    event["request"]["time"] = "2026-11-25T23:01:46.009"
    event["response"]["time"] = "2026-11-25T23:01:46.131"
    event["response"]["status"] = 503
    assert client.post("/v1/events/batch", [event]).status == 201
    (call,) = collector.calls()
    assert call["path"] == "/echo/1"
    assert call["uri"] == "http://localhost/echo/1?a=1&b=two"
    assert call["time"] == "2026-11-25T23:01:46.009"
    assert call["duration_ms"] == pytest.approx(122.0)
    assert call["status"] == 503
    assert (call["user_id"], call["company_id"], call["direction"]) == ("user-42", "acme", "Incoming")
    assert call["verb"] == event["request"]["verb"]


def test_tolerant_times_and_missing_response(collector: Collector, client: Any, make_event: Any) -> None:
    zulu = make_event(1)
    zulu["request"]["time"] = "2026-11-25T23:01:46.009123Z"
    zulu["response"]["time"] = "2026-11-26T00:01:46.509+01:00"
    pending = make_event(2, response=None)
    assert client.post("/v1/events/batch", [zulu, pending]).status == 201
    by_index = {c["id"]: c for c in collector.calls()}
    first, second = (by_index[k] for k in sorted(by_index))
    assert first["time"] == "2026-11-25T23:01:46.009"
    assert first["duration_ms"] == pytest.approx(499.877)
    assert second["status"] is None and second["duration_ms"] is None


@pytest.mark.parametrize("app_id", [None, "", "   "], ids=["missing", "empty", "blank"])
@pytest.mark.parametrize("path", ["/v1/events/batch", "/v1/events", "/v1/users", "/v1/config", "/v1/rules"])
def test_missing_application_id_is_401(
    collector: Collector, client: Any, make_event: Any, app_id: Any, path: str
) -> None:
    if path.startswith("/v1/config") or path.startswith("/v1/rules"):
        headers = {} if app_id is None else {"X-Moesif-Application-Id": app_id}
        reply = client.request("GET", path, None, headers)
    else:
        payload: Any = [make_event()] if path.endswith("batch") else {"user_id": "u"}
        if path == "/v1/events":
            payload = make_event()
        reply = client.post(path, payload, app_id=app_id)
    assert reply.status == 401
    assert reply.json()["error"] == "Unauthorized"
    assert "X-Moesif-Application-Id" in reply.json()["message"]
    assert collector.count_events() == 0 and collector.users() == []


def _truncated_gzip() -> bytes:
    data = gzip.compress(json.dumps([{"request": {"time": "t", "uri": "/x", "verb": "GET"}}] * 50).encode())
    return data[: len(data) // 2]


BAD_INPUTS: list[tuple[str, str, dict[str, Any], int, str]] = [
    # id, path, post() keyword arguments, expected status, expected message fragment
    ("invalid-json", "/v1/events/batch", {"raw": b'[{"request": '}, 400, "not valid JSON"),
    (
        "invalid-json-gzip",
        "/v1/events/batch",
        {"raw": gzip.compress(b"[{oops"), "extra": {"Content-Encoding": "gzip"}},
        400,
        "not valid JSON",
    ),
    (
        "truncated-gzip",
        "/v1/events/batch",
        {"raw": _truncated_gzip(), "extra": {"Content-Encoding": "gzip"}},
        400,
        "truncated",
    ),
    ("not-gzip", "/v1/events/batch", {"raw": b"[]", "extra": {"Content-Encoding": "gzip"}}, 400, "not valid gzip"),
    ("empty-body", "/v1/events/batch", {"raw": b""}, 400, "empty"),
    ("object-to-batch", "/v1/events/batch", {"payload": {"request": {}}}, 400, "must be a JSON array"),
    ("array-to-single", "/v1/events", {"payload": []}, 400, "must be a JSON object"),
    ("number-in-batch", "/v1/events/batch", {"payload": [1]}, 400, "events[0] must be a JSON object"),
    (
        "form-content-type",
        "/v1/events/batch",
        {"payload": [], "content_type": "application/x-www-form-urlencoded"},
        415,
        "not JSON",
    ),
    ("brotli", "/v1/events/batch", {"raw": b"[]", "extra": {"Content-Encoding": "br"}}, 415, "Content-Encoding"),
    (
        "user-without-id",
        "/v1/users/batch",
        {"payload": [{"user_id": "ok"}, {"metadata": {}}]},
        400,
        "users[1].user_id is required",
    ),
    (
        "subscription-without-company",
        "/v1/subscriptions",
        {"payload": {"subscription_id": "s"}},
        400,
        "subscription.company_id is required",
    ),
]


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "fragment"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_refused_cleanly(
    collector: Collector, client: Any, make_event: Any, path: str, kwargs: dict[str, Any], status: int, fragment: str
) -> None:
    reply = client.post(path, **kwargs)
    assert reply.status == status, reply
    body = reply.json()
    assert fragment in body["message"], body
    assert set(body) == {"error", "message"}
    assert collector.count_events() == 0 and collector.users() == [] and collector.subscriptions() == []
    # The server (and this keep-alive connection) still work afterwards.
    assert client.post("/v1/events/batch", [make_event()]).status == 201
    assert collector.count_events() == 1


def test_one_bad_event_rejects_the_whole_batch(collector: Collector, client: Any, make_event: Any) -> None:
    events = [make_event(i) for i in range(10)]
    del events[7]["request"]["uri"]
    reply = client.post("/v1/events/batch", events)
    assert reply.status == 400
    assert "events[7].request.uri" in reply.json()["message"]
    assert collector.count_events() == 0
    bad_status = [make_event(0), make_event(1)]
    bad_status[1]["response"]["status"] = "200"
    assert client.post("/v1/events/batch", bad_status).status == 400
    assert collector.count_events() == 0


def test_body_over_the_limit_is_413_and_not_read(helpers: Any) -> None:
    with Collector(max_body=64 * 1024) as small:
        client = helpers.Client(small.url)
        big = json.dumps([{"request": {"time": "t", "uri": "/" + "x" * 1000, "verb": "GET"}}] * 200).encode()
        assert len(big) > 64 * 1024
        reply = client.post("/v1/events/batch", raw=big)
        assert reply.status == 413
        assert "limit" in reply.json()["message"]
        # A gzip bomb: small on the wire, too big once inflated.
        bomb = gzip.compress(b"[" + b" " * (1024 * 1024) + b"]")
        assert len(bomb) < 64 * 1024
        reply = client.post("/v1/events/batch", raw=bomb, extra={"Content-Encoding": "gzip"})
        assert reply.status == 413
        assert "inflates past" in reply.json()["message"]
        assert small.count_events() == 0
        ok = client.post("/v1/events/batch", [{"request": {"time": "t", "uri": "/ok", "verb": "GET"}}])
        assert ok.status == 201
        client.close()


def test_deflate_chunked_and_multimember_gzip(collector: Collector, client: Any, make_event: Any) -> None:
    body = json.dumps([make_event(0)]).encode()
    assert client.post("/v1/events/batch", raw=zlib.compress(body), extra={"Content-Encoding": "deflate"}).status == 201
    # Chunked transfer encoding (no Content-Length), as a streaming client would send it.
    gz = gzip.compress(json.dumps([make_event(1), make_event(2)]).encode())
    chunked = (
        b"".join(f"{len(gz[i : i + 100]):x}\r\n".encode() + gz[i : i + 100] + b"\r\n" for i in range(0, len(gz), 100))
        + b"0\r\n\r\n"
    )
    reply = client.request(
        "POST",
        "/v1/events/batch",
        chunked,
        {
            "Transfer-Encoding": "chunked",
            "Content-Encoding": "gzip",
            "X-Moesif-Application-Id": "x",
            "Content-Type": "application/json",
        },
    )
    assert reply.status == 201, reply
    two = gzip.compress(b"[") + gzip.compress(json.dumps(make_event(3)).encode() + b"]")
    assert client.post("/v1/events/batch", raw=two, extra={"Content-Encoding": "gzip"}).status == 201
    assert collector.count_events() == 4


def test_unknown_paths_and_methods(collector: Collector, client: Any) -> None:
    assert client.post("/v1/nothing", {}).status == 404
    reply = client.get("/v1/events/batch")
    assert reply.status == 405 and reply.headers["allow"] == "POST"
    assert client.post("/v1/config", {}).status == 405
    assert client.request("OPTIONS", "/v1/events/batch").status == 204


def test_request_log_records_what_clients_sent(collector: Collector, client: Any, make_event: Any) -> None:
    client.post("/v1/events/batch", [make_event(0), make_event(1)], extra={"User-Agent": "moesifwsgi-python/9.9"})
    client.post("/v1/events/batch", [make_event(0)], app_id=None)
    client.get("/v1/config")
    log = collector.requests()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("POST", "/v1/events/batch", 201),
        ("POST", "/v1/events/batch", 401),
        ("GET", "/v1/config", 200),
    ]
    first = log[0]
    assert first["app_id"] == "test-app-id"
    assert first["user_agent"] == "moesifwsgi-python/9.9"
    assert first["content_encoding"] == "gzip"
    assert first["content_type"] == "application/json; charset=utf-8"
    assert first["items"] == 2 and first["body_bytes"] > 0
    assert client.get("/_admin/requests", app_id=None).json() == log
