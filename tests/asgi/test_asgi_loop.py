"""Nothing slow on the event loop: with the collector down (connection refused) or hanging (accepts and never
answers), requests through MoesifMiddleware keep flowing and a ticker on the server's loop is never held up for
long. The benchmark (benchmarks/asgi_overhead.py) gives the figures; this guards against regressions."""

from __future__ import annotations

import asyncio
import socket
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Dict, List

import httpx
import pytest
from asgi_support import APP_ID, UvicornServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from moesifasgi import MoesifMiddleware

#: seconds. Quiet, the worst tick here is late by a few ms; on a loaded shared machine the process itself is
#: descheduled for 100 ms at times. A network call on the loop would hold it for REQUEST_TIMEOUT (5 s) at a time.
MAX_STALL = 1.0
REQUESTS = 200


def ticking_app(lags: List[float]) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def tick() -> None:
            while True:
                t0 = time.perf_counter()
                await asyncio.sleep(0.002)
                lags.append(time.perf_counter() - t0 - 0.002)

        task = asyncio.ensure_future(tick())
        yield
        task.cancel()

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/hello", hello, methods=["GET", "POST"])], lifespan=lifespan)


def dead_base_uri() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("collector_state", ["down", "hanging"])
def test_event_loop_is_not_held_up_by_a_bad_collector(
    collector_state: str, collector: Any, serve: Callable[..., UvicornServer], middlewares: List[MoesifMiddleware]
) -> None:
    if collector_state == "hanging":
        collector.set_faults(mode="hang", scope="all")
        base_uri = collector.url
    else:
        base_uri = dead_base_uri()
    lags: List[float] = []
    app = ticking_app(lags)
    settings: Dict[str, Any] = {
        "APPLICATION_ID": APP_ID,
        "BASE_URI": base_uri,
        "BATCH_SIZE": 10,
        "EVENT_BATCH_TIMEOUT": 0.05,
        "REQUEST_TIMEOUT": 5,
    }
    app.add_middleware(MoesifMiddleware, settings=settings)
    server = serve(app)
    try:
        started = time.monotonic()
        with httpx.Client(base_url=server.url) as client:
            for i in range(REQUESTS):
                r = client.post("/hello", json={"i": i}) if i % 2 else client.get("/hello")
                assert r.status_code == 200
        elapsed = time.monotonic() - started
    finally:
        for mw in middlewares:  # while the collector still hangs (its config answer too: the worker may be
            mw.shutdown(timeout=0.1)  # holding the first batch for it, and would send it once it is released)
        collector.reset_faults()
    assert len(lags) > 10
    assert max(lags) < MAX_STALL, f"the loop was held up for {max(lags) * 1000:.0f} ms"
    assert elapsed < REQUESTS * 0.05  # no request waited on the collector
    (mw,) = middlewares
    stats = mw.agent.snapshot()
    assert stats["queued"] == REQUESTS and stats["sent"] == 0
