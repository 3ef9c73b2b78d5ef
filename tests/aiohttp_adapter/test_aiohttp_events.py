"""Events from a real aiohttp server to the real collector: bodies (JSON, form, upload), streamed responses and
server-sent events, websockets, 404s, handler exceptions, the transaction id and the callbacks."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from typing import Any, Callable

import pytest
import requests
from aiohttp import web
from aiohttp_sse import sse_response
from aiohttp_support import UUID_RE, AiohttpServer
from websockets.sync.client import connect

from moesif_aiohttp import MoesifMiddleware

Serve = Callable[[web.Application], AiohttpServer]


async def echo_json(request: web.Request) -> web.Response:
    data = await request.json()
    return web.json_response({"got": data}, headers={"X-Case": "json"})


async def form(request: web.Request) -> web.Response:
    fields = await request.post()
    return web.Response(text=",".join(f"{k}={v}" for k, v in fields.items()))


async def upload(request: web.Request) -> web.Response:
    fields = await request.post()
    f: Any = fields["file"]
    return web.json_response({"name": f.filename, "size": len(f.file.read())})


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("boom from the handler")


async def missing(request: web.Request) -> web.Response:
    raise web.HTTPNotFound(text="no such item")


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        await ws.send_str("echo " + msg.data)
    return ws


def app_with(mw: MoesifMiddleware, *routes: web.RouteDef) -> web.Application:
    app = web.Application(middlewares=[mw])
    app.add_routes(list(routes))
    return app


def by_path(events: list[dict[str, Any]], path: str) -> dict[str, Any]:
    (event,) = [e for e in events if e["request"]["uri"].split("?")[0].endswith(path)]
    return event


def test_json_event_field_by_field(collector: Any, serve: Serve, make_middleware: Any) -> None:
    server = serve(app_with(make_middleware(), web.post("/echo", echo_json)))
    payload = {"name": "x", "list": [1, 2, 3]}
    r = requests.post(server.url + "/echo?a=1", json=payload, headers={"X-Case": "client"})
    assert r.status_code == 200 and r.json() == {"got": payload}
    (event,) = collector.wait_for_events(1)
    tid = r.headers["X-Moesif-Transaction-Id"]
    assert UUID_RE.match(tid) and event["transaction_id"] == tid
    assert event["direction"] == "Incoming" and event["weight"] == 1 and event["blocked_by"] is None
    req, resp = event["request"], event["response"]
    assert req["uri"] == f"{server.url}/echo?a=1" and req["verb"] == "POST"
    assert req["ip_address"] == "127.0.0.1"
    assert req["headers"]["X-Case"] == "client" and req["headers"]["Content-Type"] == "application/json"
    assert req["body"] == payload and req["transfer_encoding"] == "json"
    assert resp["status"] == 200 and resp["body"] == {"got": payload} and resp["transfer_encoding"] == "json"
    assert resp["headers"]["Content-Type"] == r.headers["Content-Type"]
    assert resp["headers"]["X-Case"] == "json"
    assert resp["headers"]["X-Moesif-Transaction-Id"] == tid
    assert req["time"] <= resp["time"]


def test_form_and_upload_bodies_are_teed_as_the_handler_reads_them(
    collector: Any, serve: Serve, make_middleware: Any
) -> None:
    server = serve(app_with(make_middleware(), web.post("/form", form), web.post("/upload", upload)))
    r = requests.post(server.url + "/form", data={"a": "1", "b": "two"})
    assert r.text == "a=1,b=two"  # the handler read its form
    content = bytes(range(256)) * 8
    u = requests.post(server.url + "/upload", files={"file": ("blob.bin", content, "application/octet-stream")})
    assert u.json() == {"name": "blob.bin", "size": len(content)}  # and its multipart upload
    events = collector.wait_for_events(2)
    f = by_path(events, "/form")
    assert f["request"]["transfer_encoding"] == "base64"
    assert base64.b64decode(f["request"]["body"]) == b"a=1&b=two"
    assert base64.b64decode(f["response"]["body"]) == b"a=1,b=two"
    up = by_path(events, "/upload")
    assert base64.b64decode(up["request"]["body"]) == u.request.body  # the multipart body as sent
    assert up["response"]["body"] == {"name": "blob.bin", "size": len(content)}


def test_upload_over_max_body_size_is_cut_and_the_handler_gets_all_of_it(
    collector: Any, serve: Serve, make_middleware: Any
) -> None:
    server = serve(app_with(make_middleware(MAX_BODY_SIZE=1000), web.post("/upload", upload)))
    content = b"z" * 50_000
    u = requests.post(server.url + "/upload", files={"file": ("big.txt", content)})
    assert u.json() == {"name": "big.txt", "size": len(content)}
    (event,) = collector.wait_for_events(1)
    body = base64.b64decode(event["request"]["body"])
    assert len(body) == 1000 and u.request.body and u.request.body.startswith(body)  # type: ignore[union-attr]
    assert event["metadata"]["moesif_body_truncated"]


def test_sse_streams_each_event_before_the_handler_finishes(collector: Any, serve: Serve, make_middleware: Any) -> None:
    first_seen = threading.Event()
    loop_gate: dict[str, asyncio.Event] = {}

    async def events(request: web.Request) -> web.StreamResponse:
        gate = loop_gate["gate"] = asyncio.Event()
        async with sse_response(request) as resp:
            await resp.send("one")
            await asyncio.wait_for(gate.wait(), 10)  # held until the client has the first event
            await resp.send("two")
        return resp

    server = serve(app_with(make_middleware(), web.get("/events", events)))
    with requests.get(server.url + "/events", stream=True, timeout=10) as r:
        lines = r.iter_lines()
        assert next(line for line in lines if line) == b"data: one"
        first_seen.set()
        server.loop.call_soon_threadsafe(loop_gate["gate"].set)
        assert next(line for line in lines if line) == b"data: two"
        assert UUID_RE.match(r.headers["X-Moesif-Transaction-Id"])
        assert r.headers["Content-Type"] == "text/event-stream"
    (event,) = collector.wait_for_events(1)
    assert event["transaction_id"] == r.headers["X-Moesif-Transaction-Id"]
    assert event["response"]["status"] == 200
    assert event["response"]["headers"]["Content-Type"] == "text/event-stream"
    body = base64.b64decode(event["response"]["body"])
    assert b"data: one" in body and b"data: two" in body and body.index(b"one") < body.index(b"two")


def test_websocket_passes_untouched(collector: Any, serve: Serve, make_middleware: Any) -> None:
    handled = threading.Event()

    async def watched_socket(request: web.Request) -> web.WebSocketResponse:
        try:
            return await socket(request)
        finally:
            handled.set()

    mw = make_middleware()
    server = serve(app_with(mw, web.get("/ws", watched_socket), web.post("/echo", echo_json)))
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        assert ws.response.headers.get("X-Moesif-Transaction-Id") is None
        ws.send("hi")
        assert ws.recv(timeout=10) == "echo hi"
    # the handler returns after the client has closed: a capture of it would be queued before the JSON call's
    assert handled.wait(10)
    requests.post(server.url + "/echo", json=1)
    collector.wait_for_events(1)
    (only,) = collector.events()  # the JSON call's; none for the websocket
    assert only["request"]["uri"].endswith("/echo")
    assert mw.agent.snapshot()["queued"] == 1


def test_404s_are_recorded_and_raised_on(collector: Any, serve: Serve, make_middleware: Any) -> None:
    server = serve(app_with(make_middleware(), web.get("/items/{id}", missing)))
    raised = requests.get(server.url + "/items/7")
    routed = requests.get(server.url + "/nowhere")
    assert raised.status_code == 404 and raised.text == "no such item"
    assert routed.status_code == 404 and routed.text == "404: Not Found"
    events = collector.wait_for_events(2)
    for r, path in ((raised, "/items/7"), (routed, "/nowhere")):
        event = by_path(events, path)
        assert event["response"]["status"] == 404
        assert base64.b64decode(event["response"]["body"]) == r.content
        assert event["transaction_id"] == r.headers["X-Moesif-Transaction-Id"]


def test_handler_exception_gives_a_500_event_and_reaches_aiohttp(
    collector: Any, serve: Serve, make_middleware: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aiohttp.server")
    server = serve(app_with(make_middleware(), web.get("/boom", boom)))
    r = requests.get(server.url + "/boom")
    assert r.status_code == 500
    (event,) = collector.wait_for_events(1)
    assert event["response"]["status"] == 500
    assert event["transaction_id"] == r.headers["X-Moesif-Transaction-Id"]
    errors = [rec for rec in caplog.records if rec.name == "aiohttp.server" and rec.exc_info]
    assert errors and str(errors[0].exc_info[1]) == "boom from the handler"  # type: ignore[index]


def test_callbacks_get_request_and_response(collector: Any, serve: Serve, make_middleware: Any) -> None:
    def mask(event: Any) -> Any:
        event.request.headers.pop("X-Secret", None)
        return event

    mw = make_middleware(
        IDENTIFY_USER=lambda req, resp: req.headers.get("X-User"),
        IDENTIFY_COMPANY=lambda req, resp: f"co-{resp.status}",
        GET_SESSION_TOKEN=lambda req, resp: req.headers.get("X-Session"),
        GET_METADATA=lambda req, resp: {"path": req.path, "ct": resp.content_type},
        SKIP=lambda req, resp: req.path == "/health",
        MASK_EVENT_MODEL=mask,
    )
    server = serve(app_with(mw, web.post("/echo", echo_json), web.post("/health", echo_json)))
    requests.post(server.url + "/health", json=0)
    requests.post(server.url + "/echo", json=1, headers={"X-User": "u1", "X-Session": "s1", "X-Secret": "k"})
    mw.flush(5)
    (event,) = collector.wait_for_events(1)
    assert event["request"]["uri"].endswith("/echo")
    assert event["user_id"] == "u1" and event["company_id"] == "co-200" and event["session_token"] == "s1"
    assert event["metadata"] == {"path": "/echo", "ct": "application/json"}
    assert "X-Secret" not in event["request"]["headers"]


def test_client_transaction_id_is_reused(collector: Any, serve: Serve, make_middleware: Any) -> None:
    server = serve(app_with(make_middleware(), web.post("/echo", echo_json)))
    tid = "3f2b9c1e-1d2a-4b5c-8d6e-7f8091a2b3c4"
    r = requests.post(server.url + "/echo", json=1, headers={"X-Moesif-Transaction-Id": tid})
    assert r.headers["X-Moesif-Transaction-Id"] == tid
    (event,) = collector.wait_for_events(1)
    assert event["transaction_id"] == tid


def test_capture_outgoing_requests_records_the_handlers_client_calls(
    collector: Any, serve: Serve, make_middleware: Any
) -> None:
    import aiohttp

    import moesifpythonrequest

    async def upstream(request: web.Request) -> web.Response:
        return web.json_response({"upstream": True})

    third_party = serve(app_with(make_middleware(), web.get("/up", upstream)))

    async def proxy(request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as session, session.get(third_party.url + "/up") as r:
            return web.json_response({"via": await r.json()})

    try:
        server = serve(app_with(make_middleware(CAPTURE_OUTGOING_REQUESTS=True), web.get("/proxy", proxy)))
        assert requests.get(server.url + "/proxy").json() == {"via": {"upstream": True}}
        # this test's own requests.get is an outgoing call of this process too: four events in all
        events = collector.wait_for_events(4)
    finally:
        moesifpythonrequest.stop(timeout=2)
    (out,) = [e for e in events if e["direction"] == "Outgoing" and e["request"]["uri"].endswith("/up")]
    assert out["request"]["uri"] == third_party.url + "/up" and out["response"]["body"] == {"upstream": True}
    assert sorted(e["request"]["uri"].rsplit("/", 1)[-1] for e in events if e["direction"] == "Incoming") == [
        "proxy",
        "up",
    ]
