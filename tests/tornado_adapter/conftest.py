"""Fixtures for the moesiftornado tests: real Tornado servers on 127.0.0.1 and middlewares pointed at the real
local collector (the ``collector`` fixture of ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest
import tornado.web
from tornado_support import APP_ID, TornadoServer

from moesiftornado import MoesifMiddleware


@pytest.fixture
def serve() -> Iterator[Callable[..., TornadoServer]]:
    """``serve(app, **HTTPServer kwargs)`` starts a real server and returns it; stopped at teardown."""
    servers: list[TornadoServer] = []

    def start(app: tornado.web.Application, **kwargs: Any) -> TornadoServer:
        server = TornadoServer(app, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def make_middleware(collector: Any) -> Iterator[Callable[..., MoesifMiddleware]]:
    """``make_middleware(**config)``: a MoesifMiddleware sending to the collector, quickly (small batch timeout);
    shut down at teardown so no worker thread outlives the test."""
    made: list[MoesifMiddleware] = []

    def make(**config: Any) -> MoesifMiddleware:
        settings = {"APPLICATION_ID": APP_ID, "BASE_URI": collector.url, "EVENT_BATCH_TIMEOUT": 0.05, **config}
        mw = MoesifMiddleware(settings)
        made.append(mw)
        return mw

    yield make
    for mw in made:
        mw.shutdown(timeout=2)
