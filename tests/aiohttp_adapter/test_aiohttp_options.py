"""moesif-aiohttp's settings and failure paths: failing callbacks never reach the app, ``async`` callbacks are
awaited, ``LOG_BODY`` and ``DISABLED_TRANSACTION_ID`` are honoured, binary streams (which broke the original) stream
and are captured, and a wrong setting is one clear error."""

from __future__ import annotations

import base64
import logging
from typing import Any, Callable

import pytest
import requests
from aiohttp import web
from aiohttp_support import APP_ID, UUID_RE, AiohttpServer

from moesif_aiohttp import MoesifMiddleware

Serve = Callable[[web.Application], AiohttpServer]


async def echo(request: web.Request) -> web.Response:
    return web.json_response(await request.json())


async def binary(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    for i in range(4):
        await response.write(bytes([0xFF, 0xFE, 0x00, i]) * 256)
    await response.write_eof()
    return response


def app_with(mw: MoesifMiddleware) -> web.Application:
    app = web.Application(middlewares=[mw])
    app.add_routes([web.post("/echo", echo), web.get("/binary", binary)])
    return app


def test_failing_callbacks_are_logged_and_the_call_is_untouched(
    collector: Any, serve: Serve, make_middleware: Any, moesif_log: pytest.LogCaptureFixture
) -> None:
    def broken(request: web.Request, response: web.StreamResponse) -> Any:
        raise KeyError("no such user")

    async def broken_async(request: web.Request, response: web.StreamResponse) -> Any:
        raise RuntimeError("async trouble")

    mw = make_middleware(IDENTIFY_USER=broken, GET_METADATA=broken_async, SKIP=broken)
    server = serve(app_with(mw))
    r = requests.post(server.url + "/echo", json={"a": 1})
    assert r.status_code == 200 and r.json() == {"a": 1}
    (event,) = collector.wait_for_events(1)
    assert event["user_id"] is None and event["metadata"] is None and event["response"]["body"] == {"a": 1}
    failed = {rec.getMessage() for rec in moesif_log.records if rec.name == "moesif" and rec.exc_info}
    assert any("IDENTIFY_USER" in m for m in failed) and any("GET_METADATA" in m for m in failed), failed
    assert any("SKIP" in m for m in failed), failed


def test_async_callbacks_are_awaited(collector: Any, serve: Serve, make_middleware: Any) -> None:
    async def user(request: web.Request, response: web.StreamResponse) -> str:
        return f"user-{response.status}"

    async def skip(request: web.Request, response: web.StreamResponse) -> bool:
        return request.query.get("skip") == "1"

    server = serve(app_with(make_middleware(IDENTIFY_USER=user, SKIP=skip)))
    requests.post(server.url + "/echo?skip=1", json={"n": 1})
    requests.post(server.url + "/echo", json={"n": 2})
    (event,) = collector.wait_for_events(1)
    assert event["user_id"] == "user-200" and event["request"]["body"] == {"n": 2}


def test_log_body_off_and_no_transaction_id(collector: Any, serve: Serve, make_middleware: Any) -> None:
    server = serve(app_with(make_middleware(LOG_BODY=False, DISABLED_TRANSACTION_ID=True)))
    r = requests.post(server.url + "/echo", json={"a": 1})
    assert r.json() == {"a": 1} and "X-Moesif-Transaction-Id" not in r.headers
    (event,) = collector.wait_for_events(1)
    assert event["request"]["body"] is None and event["response"]["body"] is None
    assert UUID_RE.match(event["transaction_id"])  # an event id still, just not sent as a header
    assert "X-Moesif-Transaction-Id" not in event["response"]["headers"]


def test_binary_stream_streams_and_is_captured(collector: Any, serve: Serve, make_middleware: Any) -> None:
    server = serve(app_with(make_middleware()))
    r = requests.get(server.url + "/binary")
    expected = b"".join(bytes([0xFF, 0xFE, 0x00, i]) * 256 for i in range(4))
    assert r.status_code == 200 and r.content == expected
    (event,) = collector.wait_for_events(1)
    assert base64.b64decode(event["response"]["body"]) == expected
    assert event["response"]["headers"]["Content-Type"] == "application/octet-stream"


def test_a_misspelt_setting_is_one_clear_error(collector: Any) -> None:
    with pytest.raises(ValueError, match=r"LOG_BODDY.*LOG_BODY"):
        MoesifMiddleware({"APPLICATION_ID": APP_ID, "BASE_URI": collector.url, "LOG_BODDY": True})


def test_no_logging_set_up_for_the_app(collector: Any, make_middleware: Any) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    make_middleware()
    assert root.handlers == before  # the original called logging.basicConfig


def test_nothing_is_left_behind_and_nothing_global_is_replaced(
    collector: Any, serve: Serve, make_middleware: Any
) -> None:
    from aiohttp.streams import StreamReader

    from moesif_aiohttp import middleware

    kept: list[Any] = []

    async def keep(request: web.Request) -> web.Response:
        kept.append((request.content, request.writer))
        return web.json_response(await request.json())

    app = web.Application(middlewares=[make_middleware()])
    app.add_routes([web.post("/keep", keep)])
    server = serve(app)
    assert requests.post(server.url + "/keep", json={"a": 1}).json() == {"a": 1}
    (event,) = collector.wait_for_events(1)
    assert event["request"]["body"] == {"a": 1}
    stream, writer = kept[0]
    assert type(stream) is StreamReader and not middleware._READING  # the request's stream got its class back
    assert writer._on_chunk_sent is None  # the writer stopped teeing
    # and has its headers hook back once they were sent: no call <-> writer cycle waits for the cyclic GC
    assert writer._on_headers_sent is None
    for cls, name in ((web.StreamResponse, "write"), (web.StreamResponse, "write_eof"), (StreamReader, "read")):
        assert getattr(cls, name).__module__.startswith("aiohttp."), (cls, name)


def test_head_and_a_raised_redirect(collector: Any, serve: Serve, make_middleware: Any) -> None:
    async def page(request: web.Request) -> web.Response:
        if "old" in request.query:
            raise web.HTTPFound("/page")
        return web.json_response({"page": 1})

    app = web.Application(middlewares=[make_middleware()])
    app.add_routes([web.get("/page", page)])  # aiohttp answers HEAD for GET routes
    server = serve(app)
    head = requests.head(server.url + "/page")
    moved = requests.get(server.url + "/page?old=1", allow_redirects=False)
    assert head.status_code == 200 and head.content == b""
    assert moved.status_code == 302 and moved.headers["Location"] == "/page"
    events = {e["request"]["verb"] + e["request"]["uri"][len(server.url) :]: e for e in collector.wait_for_events(2)}
    assert events["HEAD/page"]["response"]["body"] is None
    redirect = events["GET/page?old=1"]["response"]
    assert redirect["status"] == 302 and redirect["headers"]["Location"] == "/page"
    assert events["GET/page?old=1"]["transaction_id"] == moved.headers["X-Moesif-Transaction-Id"]


def test_a_client_gone_with_handler_cancellation_is_a_499(collector: Any, serve: Any, make_middleware: Any) -> None:
    import asyncio
    import socket
    import threading

    started, cancelled = threading.Event(), threading.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return web.Response(text="never")

    app = web.Application(middlewares=[make_middleware(IDENTIFY_USER=lambda req, resp: f"gone-{resp.status}")])
    app.add_routes([web.get("/slow", slow)])
    server = serve(app, handler_cancellation=True)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert started.wait(10)
    assert cancelled.wait(10)  # the client closed the connection: aiohttp cancelled the handler
    (event,) = collector.wait_for_events(1)
    assert event["response"]["status"] == 499 and event["user_id"] == "gone-499"
    assert event["request"]["uri"].endswith("/slow")
