"""Streams stay streams under MoesifMiddleware (real uvicorn, real clients): server-sent events arrive chunk by
chunk, a 50 MB download costs bounded memory, a client that drops mid-stream still yields exactly one event,
``http.disconnect`` reaches the app, and websocket and lifespan are untouched."""

from __future__ import annotations

import base64
import socket
import threading
import time
from typing import Any, Callable, List

import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]
from asgi_support import MB, WAIT, Gates, UvicornServer, check_shape
from websockets.sync.client import connect

from moesif_core import TRUNCATED_METADATA_KEY
from moesifasgi import MoesifMiddleware


def test_sse_first_chunk_arrives_before_the_last_is_produced(
    served: Callable[..., UvicornServer], gates: Gates, collector: Any
) -> None:
    server = served()
    with httpx.Client(base_url=server.url, timeout=WAIT) as client, client.stream("GET", "/sse") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        chunks = r.iter_raw()
        first = next(chunks)
        # The app is parked on a gate before it produces the last chunk: the first one reached us meanwhile.
        assert first == b"data: first\n\n"
        assert not gates["sse-last-produced"].is_set()
        gates["sse-release"].set()
        rest = b"".join(chunks)
    assert rest == b"data: last\n\n"
    (event,) = collector.wait_for_events(1)
    check_shape(event)
    assert event["response"]["status"] == 200
    assert base64.b64decode(event["response"]["body"]) == b"data: first\n\ndata: last\n\n"


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def test_50mb_streamed_download_with_bounded_memory(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served()
    with httpx.Client(base_url=server.url, timeout=WAIT * 3) as client:
        client.get("/big?mb=2")  # warm up: first-use allocations are not what we measure
        collector.wait_for_events(1)
        base = _rss()
        peak = base
        received = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _rss())
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with client.stream("GET", "/big?mb=50") as r:
            for chunk in r.iter_raw():
                received += len(chunk)
        stop.set()
        sampler.join()
    assert received == 50 * MB
    # Bodies are kept up to MAX_BODY_SIZE (1 MiB): the download passes through without piling up.
    assert peak - base < 24 * MB, f"RSS grew by {(peak - base) / MB:.1f} MB"
    events = collector.wait_for_events(2)
    big = events[-1]
    assert big["metadata"][TRUNCATED_METADATA_KEY] == {"response": 50 * MB}
    assert big["response"]["transfer_encoding"] == "base64"
    assert len(base64.b64decode(big["response"]["body"])) == MB


def _raw_request(server: UvicornServer, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
    return sock


def test_client_dropping_mid_stream_yields_one_event(
    served: Callable[..., UvicornServer], gates: Gates, collector: Any, middlewares: List[MoesifMiddleware]
) -> None:
    server = served()
    sock = _raw_request(server, "/endless")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert gates["endless-started"].wait(WAIT)
    sock.close()
    assert gates["endless-ended"].wait(WAIT)  # Starlette saw the disconnect and stopped the stream
    (event,) = collector.wait_for_events(1)
    check_shape(event)
    assert event["response"]["status"] == 200
    assert event["request"]["uri"].endswith("/endless")
    assert len(base64.b64decode(event["response"]["body"])) >= 10 * 1024
    for mw in middlewares:
        assert mw.flush(5)
    assert collector.count_events() == 1


def test_disconnect_reaches_the_app(
    served: Callable[..., UvicornServer], gates: Gates, collector: Any, middlewares: List[MoesifMiddleware]
) -> None:
    server = served()
    sock = _raw_request(server, "/wait-disconnect")
    assert gates["waiting-for-disconnect"].wait(WAIT)
    sock.close()
    assert gates["app-saw-disconnect"].wait(WAIT)
    (event,) = collector.wait_for_events(1)
    check_shape(event)
    assert event["response"]["status"] == 499  # the client closed before any response
    for mw in middlewares:
        assert mw.flush(5)
    assert collector.count_events() == 1


def test_websocket_and_lifespan_pass_through(
    served: Callable[..., UvicornServer], gates: Gates, collector: Any, middlewares: List[MoesifMiddleware]
) -> None:
    server = served()
    assert gates["lifespan-startup"].is_set()
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=WAIT) as ws:
        for text in ("hello", "wörld", "x" * 70000):
            ws.send(text)
            assert ws.recv(timeout=WAIT) == "echo: " + text
        ws.send("bye")
    httpx.get(server.url + "/hello")
    collector.wait_for_events(1)
    for mw in middlewares:
        assert mw.flush(5)
    (event,) = collector.events()  # the HTTP call only: websockets are not recorded
    assert event["request"]["uri"].endswith("/hello")
    server.stop()
    assert gates["lifespan-shutdown"].wait(WAIT)


def test_app_reads_a_chunked_upload_as_it_streams(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served()
    parts = [b'{"data": "', b"z" * 300_000, b'"}']

    def body() -> Any:
        yield from parts

    with httpx.Client(base_url=server.url, timeout=WAIT) as client:
        r = client.put("/echo", content=body(), headers={"Content-Type": "application/json"})
    assert r.json() == {"len": sum(len(p) for p in parts)}
    (event,) = collector.wait_for_events(1)
    assert event["request"]["body"] == {"data": "z" * 300_000}
    assert event["request"]["headers"]["transfer-encoding"] == "chunked"


def test_suspending_async_callbacks_survive_the_end_of_a_stream(
    served: Callable[..., UvicornServer], collector: Any
) -> None:
    """Starlette's StreamingResponse cancels its task group when the stream ends, while the middleware is still
    awaiting the callbacks: they must complete and the event must be sent, for every streamed call."""
    import asyncio

    async def identify_user(request: Any, response: Any) -> str:
        await asyncio.sleep(0.02)  # really suspends
        return "slow-user"

    async def get_metadata(request: Any, response: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"path": request.url.path}

    server = served(IDENTIFY_USER=identify_user, GET_METADATA=get_metadata)
    with httpx.Client(base_url=server.url, timeout=WAIT) as client:
        for _ in range(5):
            assert len(client.get("/big?mb=1").content) == MB
    events = collector.wait_for_events(5)
    assert [(e["user_id"], e["metadata"]) for e in events] == [("slow-user", {"path": "/big"})] * 5
