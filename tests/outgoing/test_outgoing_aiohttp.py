"""Outgoing capture of ``aiohttp.ClientSession`` calls, behind the same option: one event per exchange, streamed
bodies teed as the caller reads them (capped), nothing of the SDK's own nor a websocket handshake, and everything put
back by ``stop``."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Awaitable, Callable, TypeVar

import aiohttp
from outgoing_helpers import Capture, ThirdPartyAPI, pattern

import moesifpythonrequest

T = TypeVar("T")


def run(fn: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
    async def main() -> T:
        async with aiohttp.ClientSession() as session:
            return await fn(session)

    return asyncio.run(main())


def test_json_calls_with_bodies(started: Capture, api: ThirdPartyAPI) -> None:
    async def calls(session: aiohttp.ClientSession) -> Any:
        async with session.get(api.url("/json?a=1"), headers={"X-Case": "aiohttp"}) as r:
            got = await r.json()
        async with session.post(api.url("/echo"), json={"name": "x"}) as r:
            echoed = await r.json()
        return got, echoed

    got, echoed = run(calls)
    assert got["ok"] is True and echoed == {"name": "x"}
    get, post = sorted(started.events(2), key=lambda e: e["request"]["verb"])
    assert get["direction"] == "Outgoing" and get["request"]["uri"] == api.url("/json?a=1")
    assert get["request"]["headers"]["X-Case"] == "aiohttp"
    assert get["response"]["status"] == 200 and get["response"]["body"]["ok"] is True
    assert get["response"]["headers"]["X-Api"] == "third-party"
    assert post["request"]["body"] == {"name": "x"} and post["response"]["body"] == {"name": "x"}


def test_stream_is_not_pre_read_and_is_capped(capture: Capture, api: ThirdPartyAPI) -> None:
    capture.start(MAX_BODY_SIZE=1000)

    async def calls(session: aiohttp.ClientSession) -> bytes:
        async with session.get(api.url("/gate?id=aiohttp1")) as r:  # headers in, body held back by the API
            active = moesifpythonrequest._state.ACTIVE
            assert active is not None
            assert r.status == 200 and active.agent.snapshot()["queued"] == 0  # the event waits for the body
            api.open_gate("aiohttp1")
            assert await r.read() == b"first;second"
        async with session.get(api.url("/bytes?n=30000&chunk=4096")) as r:
            return b"".join([chunk async for chunk in r.content.iter_chunked(3000)])

    assert run(calls) == pattern(30000)
    big, gate = sorted(capture.events(2), key=lambda e: e["request"]["uri"])  # /bytes < /gate
    assert base64.b64decode(gate["response"]["body"]) == b"first;second"
    assert base64.b64decode(big["response"]["body"]) == pattern(1000)
    assert big["metadata"]["moesif_body_truncated"] == {"response": 30000}


def test_released_unread_response_still_gives_its_event(started: Capture, api: ThirdPartyAPI) -> None:
    async def calls(session: aiohttp.ClientSession) -> int:
        async with session.get(api.url("/bytes?n=5000&chunk=1000")) as r:
            return r.status

    assert run(calls) == 200
    (event,) = started.events(1)
    assert event["response"]["status"] == 200 and event["request"]["uri"].endswith("/bytes?n=5000&chunk=1000")


def test_redirect_one_event_per_exchange(started: Capture, api: ThirdPartyAPI) -> None:
    async def calls(session: aiohttp.ClientSession) -> Any:
        async with session.get(api.url("/redirect?hops=2")) as r:
            return r.status, len(r.history), await r.json()

    status, hops, body = run(calls)
    assert status == 200 and hops == 2 and body["ok"] is True
    events = started.events(3)
    assert sorted(e["response"]["status"] for e in events) == [200, 302, 302]


def test_sdk_calls_and_a_second_start_add_nothing(started: Capture, api: ThirdPartyAPI) -> None:
    moesifpythonrequest.start(started.options())  # another adapter asking: still one event per call

    async def calls(session: aiohttp.ClientSession) -> None:
        async with session.get(started.collector.url + "/v1/config") as r:  # the SDK's BASE_URI
            await r.read()
        async with session.get(api.url("/json")) as r:
            await r.read()

    run(calls)
    started.flush()
    (event,) = started.events(1)
    assert event["request"]["uri"] == api.url("/json")
    assert started.collector.count_events() == 1


def test_websocket_handshake_is_not_an_event(started: Capture, api: ThirdPartyAPI) -> None:
    import threading

    from websockets.sync.server import ServerConnection, serve

    def echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(f"echo {message}")

    with serve(echo, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]

        async def calls(session: aiohttp.ClientSession) -> str:
            async with session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
                await ws.send_str("hi")
                reply = await ws.receive_str()
            async with session.get(api.url("/json")) as r:
                await r.read()
            return reply

        try:
            assert run(calls) == "echo hi"
        finally:
            server.shutdown()
    (event,) = started.events(1)  # the handshake (a 101) came first: had it been recorded, it would be here too
    assert event["request"]["uri"] == api.url("/json")
