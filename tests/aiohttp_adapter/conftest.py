"""Fixtures for the moesif_aiohttp tests: real aiohttp servers on 127.0.0.1 and middlewares pointed at the real
local collector (the ``collector`` fixture of ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest
from aiohttp import web
from aiohttp_support import APP_ID, AiohttpServer

from moesif_aiohttp import MoesifMiddleware


@pytest.fixture
def serve() -> Iterator[Callable[..., AiohttpServer]]:
    """``serve(app, **AppRunner kwargs)`` starts a real server and returns it; stopped at teardown."""
    servers: list[AiohttpServer] = []

    def start(app: web.Application, **runner_kwargs: Any) -> AiohttpServer:
        server = AiohttpServer(app, **runner_kwargs).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def make_middleware(collector: Any) -> Iterator[Callable[..., MoesifMiddleware]]:
    """``make_middleware(**settings)``: a MoesifMiddleware sending to the collector quickly (small batch timeout);
    shut down at teardown so no worker thread outlives the test."""
    made: list[MoesifMiddleware] = []

    def make(**settings: Any) -> MoesifMiddleware:
        mw = MoesifMiddleware(
            {"APPLICATION_ID": APP_ID, "BASE_URI": collector.url, "EVENT_BATCH_TIMEOUT": 0.05, **settings}
        )
        made.append(mw)
        return mw

    yield make
    for mw in made:
        mw.shutdown(timeout=2)
