"""End to end: FastAPI and Starlette apps with MoesifMiddleware under a real uvicorn, a real httpx client, and the
real local collector; events checked field by field against docs/wire.md."""

from __future__ import annotations

import base64
import json
from typing import Any, Callable

import httpx
from asgi_support import APP_ID, APPS, UUID_RE, Gates, UvicornServer, check_shape, event_for, wait_until

from moesif_core import TRUNCATED_METADATA_KEY

BASIC_ALICE = "Basic " + base64.b64encode(b"alice:pw").decode()


def jwt(payload: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{body}.sig"


def test_post_json_event_field_by_field(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served(GET_METADATA=lambda req, resp: {"case": "post_json"})
    payload = {"name": "x", "password": "secret"}
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/echo?a=1&b=two", json=payload, headers={"Authorization": BASIC_ALICE, "X-Case": "post_json"})
    assert r.status_code == 200
    tid = r.headers["x-moesif-transaction-id"]
    assert UUID_RE.match(tid)

    (event,) = collector.wait_for_events(1)
    check_shape(event)
    req, resp = event["request"], event["response"]
    assert req["uri"] == f"{server.url}/echo?a=1&b=two"
    assert req["verb"] == "POST"
    assert req["api_version"] is None
    assert req["ip_address"] == "127.0.0.1"
    # ASGI header names are lower-case, as the framework gives them; the transaction id is added
    assert req["headers"]["content-type"] == "application/json"
    assert req["headers"]["x-case"] == "post_json"
    assert req["headers"]["host"] == f"127.0.0.1:{server.port}"
    assert req["headers"]["authorization"] == BASIC_ALICE
    assert req["headers"]["X-Moesif-Transaction-Id"] == tid
    assert req["body"] == payload
    assert req["transfer_encoding"] == "json"
    assert r.json() == {"len": int(req["headers"]["content-length"])}

    assert resp["status"] == 200
    assert resp["ip_address"] is None
    assert resp["headers"]["content-type"] == "application/json"
    assert resp["headers"]["x-case"] == "echo"
    assert resp["headers"]["content-length"] == r.headers["content-length"]
    assert resp["headers"]["X-Moesif-Transaction-Id"] == tid
    assert resp["body"] == r.json()
    assert resp["transfer_encoding"] == "json"

    assert event["user_id"] == "alice"
    assert event["company_id"] is None
    assert event["session_token"] is None
    assert event["tags"] is None
    assert event["metadata"] == {"case": "post_json"}
    assert event["weight"] == 1
    assert event["blocked_by"] is None
    assert event["transaction_id"] == tid


def test_form_post_and_text_response_go_base64(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served()
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/form", data={"b": "2", "a": "1"})
    assert r.text == "fields: a,b"
    (event,) = collector.wait_for_events(1)
    check_shape(event)
    assert event["request"]["transfer_encoding"] == "base64"
    assert base64.b64decode(event["request"]["body"]) == b"b=2&a=1"
    assert event["request"]["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert event["response"]["transfer_encoding"] == "base64"
    assert base64.b64decode(event["response"]["body"]) == b"fields: a,b"


def test_multipart_upload_is_captured_raw(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served()
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/form", data={"field": "v"}, files={"upload": ("a.bin", b"\x00\x01binary")})
    assert r.text == "fields: field,upload"
    (event,) = collector.wait_for_events(1)
    raw = base64.b64decode(event["request"]["body"])
    assert b"\x00\x01binary" in raw and b'name="field"' in raw
    assert event["request"]["transfer_encoding"] == "base64"


def test_get_without_bodies_has_nulls(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served()
    with httpx.Client(base_url=server.url) as client:
        r = client.get("/items/42")
    assert r.json() == {"item": "42"}
    (event,) = collector.wait_for_events(1)
    check_shape(event)
    assert event["request"]["body"] is None
    assert event["request"]["transfer_encoding"] is None
    assert event["request"]["uri"] == f"{server.url}/items/42"
    assert event["response"]["body"] == {"item": "42"}


def test_head_response_has_no_body(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served()
    with httpx.Client(base_url=server.url) as client:
        r = client.head("/hello")
    assert r.status_code == 200 and r.content == b""
    (event,) = collector.wait_for_events(1)
    assert event["request"]["verb"] == "HEAD"
    assert event["response"]["body"] is None
    assert event["response"]["transfer_encoding"] is None


def test_response_identical_with_and_without_middleware(
    framework: str,
    gates: Gates,
    settings: Callable[..., dict[str, Any]],
    serve: Callable[..., UvicornServer],
    collector: Any,
) -> None:
    from moesifasgi import MoesifMiddleware

    plain = serve(APPS[framework](gates))
    app = APPS[framework](gates)
    app.add_middleware(MoesifMiddleware, settings=settings())
    wrapped = serve(app)
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/echo", {"json": {"a": [1, 2, 3]}}),
        ("GET", "/items/7", {}),
        ("GET", "/hello", {}),
        ("HEAD", "/hello", {}),
        ("POST", "/form", {"data": {"x": "1"}}),
        ("GET", "/big?mb=1", {}),
        ("GET", "/nope", {}),
        ("GET", "/boom", {}),
    ]
    for method, path, kwargs in calls:
        seen = []
        for server in (plain, wrapped):
            with httpx.Client(base_url=server.url) as client:
                r = client.request(method, path, **kwargs)
            headers = [(k, v) for k, v in r.headers.multi_items() if k not in ("date", "x-moesif-transaction-id")]
            seen.append((r.status_code, headers, r.content))
            if server is wrapped:
                assert UUID_RE.match(r.headers.get("x-moesif-transaction-id", "")) or r.status_code == 500
        assert seen[0] == seen[1], (method, path)
    collector.wait_for_events(len(calls))


def test_disabled_transaction_id(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served(DISABLED_TRANSACTION_ID=True)
    with httpx.Client(base_url=server.url) as client:
        r = client.get("/hello")
    assert "x-moesif-transaction-id" not in r.headers
    (event,) = collector.wait_for_events(1)
    assert not any(k.lower() == "x-moesif-transaction-id" for k in event["request"]["headers"])
    assert not any(k.lower() == "x-moesif-transaction-id" for k in event["response"]["headers"])
    assert UUID_RE.match(event["transaction_id"])  # the event still has its id (the collector dedups on it)


def test_client_transaction_id_is_kept(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served()
    with httpx.Client(base_url=server.url) as client:
        r = client.get("/hello", headers={"X-Moesif-Transaction-Id": "upstream-123"})
    assert r.headers["x-moesif-transaction-id"] == "upstream-123"
    (event,) = collector.wait_for_events(1)
    assert event["transaction_id"] == "upstream-123"
    assert event["response"]["headers"]["X-Moesif-Transaction-Id"] == "upstream-123"


def test_jwt_user_and_forwarded_ip(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served()
    with httpx.Client(base_url=server.url) as client:
        client.get(
            "/hello",
            headers={
                "Authorization": "Bearer " + jwt({"sub": "user-42"}),
                "X-Forwarded-For": "unknown, 10.0.0.1, 203.0.113.7",
            },
        )
    (event,) = collector.wait_for_events(1)
    assert event["user_id"] == "user-42"
    assert event["request"]["ip_address"] == "10.0.0.1"


def test_log_body_false_sends_no_bodies(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served(LOG_BODY=False)
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/echo", json={"a": 1})
    assert r.status_code == 200
    (event,) = collector.wait_for_events(1)
    for side in ("request", "response"):
        assert event[side]["body"] is None
        assert event[side]["transfer_encoding"] is None


def test_bodies_over_the_cap_are_truncated_and_marked(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served(MAX_BODY_SIZE=1000)
    body = json.dumps({"data": "y" * 5000}).encode()
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/echo", content=body, headers={"Content-Type": "application/json"})
    assert r.json() == {"len": len(body)}  # the app read it whole
    (event,) = collector.wait_for_events(1)
    assert event["request"]["transfer_encoding"] == "base64"
    assert base64.b64decode(event["request"]["body"]) == body[:1000]
    assert event["metadata"][TRUNCATED_METADATA_KEY] == {"request": len(body)}


def test_masks(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served(
        REQUEST_HEADER_MASKS=["x-secret"],
        REQUEST_BODY_MASKS=["password"],
        RESPONSE_HEADER_MASKS=["X-Case"],
        RESPONSE_BODY_MASKS=["len"],
    )
    with httpx.Client(base_url=server.url) as client:
        client.post("/echo", json={"user": "u", "password": "p"}, headers={"X-Secret": "s"})
    (event,) = collector.wait_for_events(1)
    # masks remove what they name, as the originals did
    assert "x-secret" not in event["request"]["headers"] and event["request"]["headers"]["content-type"]
    assert event["request"]["body"] == {"user": "u"}
    assert "x-case" not in event["response"]["headers"]
    assert event["response"]["body"] == {}


def test_app_exception_is_a_500_event(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served()
    # uvicorn closes the connection after an exception: one client per request
    r = httpx.get(server.url + "/boom")
    ok = httpx.get(server.url + "/hello")  # the server (and the middleware) carry on
    assert r.status_code == 500 and ok.status_code == 200
    events = collector.wait_for_events(2)
    event = event_for(events, "/boom")
    check_shape(event)
    assert event["response"]["status"] == 500
    assert UUID_RE.match(event["transaction_id"])


def test_background_task_runs_and_event_is_recorded(
    served: Callable[..., UvicornServer], gates: Gates, collector: Any
) -> None:
    server = served()
    with httpx.Client(base_url=server.url) as client:
        r = client.get("/background")
    assert r.text == "queued"
    assert gates["background-ran"].wait(10)
    (event,) = collector.wait_for_events(1)
    assert event["response"]["status"] == 200
    assert base64.b64decode(event["response"]["body"]) == b"queued"


def test_not_found_is_recorded(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served()
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/missing").status_code == 404
    (event,) = collector.wait_for_events(1)
    assert event["response"]["status"] == 404


def test_profiles_reach_the_collector(
    framework: str, gates: Gates, settings: Callable[..., dict[str, Any]], collector: Any
) -> None:
    from moesifasgi import MoesifMiddleware

    mw = MoesifMiddleware(APPS[framework](gates), settings=settings())
    assert mw.update_user({"user_id": "u1", "metadata": {"plan": "pro"}}) is True
    assert mw.update_users_batch([{"user_id": "u2"}, {"user_id": "u3"}]) is True
    assert mw.update_company({"company_id": "c1"}) is True
    assert mw.update_companies_batch([{"company_id": "c2"}]) is True
    assert mw.update_subscription({"subscription_id": "s1", "company_id": "c1"}) is True
    assert mw.update_subscriptions_batch([{"subscription_id": "s2", "company_id": "c1"}]) is True
    wait_until(lambda: len(collector.users()) == 3, what="users")
    assert {u["user_id"] for u in collector.users()} == {"u1", "u2", "u3"}
    assert {c["company_id"] for c in collector.companies()} == {"c1", "c2"}
    assert {s["subscription_id"] for s in collector.subscriptions()} == {"s1", "s2"}
    assert mw.update_user({"metadata": {}}) is False  # logged, never raised into the app (as the original)


def test_user_agent_and_application_id(served: Callable[..., UvicornServer], collector: Any) -> None:
    from moesifasgi import __version__

    server = served()
    with httpx.Client(base_url=server.url) as client:
        client.get("/hello")
    collector.wait_for_events(1)

    def batch_rows() -> list[dict[str, Any]]:
        return [r for r in collector.requests() if r.get("path") == "/v1/events/batch"]

    wait_until(lambda: bool(batch_rows()), what="the batch in the request log")
    row = batch_rows()[0]
    assert row["user_agent"] == f"moesifasgi-python/{__version__}"
    assert row["app_id"] == APP_ID
    assert row["content_encoding"] == "gzip"


def test_capture_outgoing_requests(
    framework: str,
    gates: Gates,
    settings: Callable[..., dict[str, Any]],
    serve: Callable[..., UvicornServer],
    collector: Any,
) -> None:
    """The app's own ``requests`` calls are captured (moesifpythonrequest, sharing the middleware's agent)."""
    import anyio.to_thread
    import requests
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    import moesifpythonrequest
    from moesifasgi import MoesifMiddleware

    target = serve(APPS[framework](gates))  # a plain server to call out to

    async def outgoing(request: Request) -> JSONResponse:
        r = await anyio.to_thread.run_sync(lambda: requests.get(target.url + "/items/5", timeout=10))
        return JSONResponse({"upstream": r.json()})

    app = APPS[framework](gates)
    app.add_route("/outgoing", outgoing)
    app.add_middleware(
        MoesifMiddleware,
        settings=settings(CAPTURE_OUTGOING_REQUESTS=True, GET_METADATA_OUTGOING=lambda req, resp: {"via": "requests"}),
    )
    server = serve(app)
    try:
        # (httpx is captured too while capture is on: this very call is an outgoing event of the test process)
        assert httpx.get(server.url + "/outgoing").json() == {"upstream": {"item": "5"}}
        events = collector.wait_for_events(3)
    finally:
        moesifpythonrequest.stop(2)
    (incoming,) = [e for e in events if e["direction"] == "Incoming"]
    assert incoming["request"]["uri"] == server.url + "/outgoing"
    (out,) = [e for e in events if e["direction"] == "Outgoing" and e["request"]["uri"].endswith("/items/5")]
    assert out["request"]["uri"] == target.url + "/items/5"
    assert out["request"]["verb"] == "GET"
    assert out["response"]["status"] == 200 and out["response"]["body"] == {"item": "5"}
    assert out["metadata"] == {"via": "requests"}
