"""Fixtures for the moesifasgi tests: the demo apps wrapped in MoesifMiddleware pointed at the real local collector
(the ``collector`` fixture of ``tests/conftest.py``), served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable, List

import pytest
from asgi_support import APP_ID, APPS, Gates, UvicornServer

import moesifasgi.middleware
from moesifasgi import MoesifMiddleware


@pytest.fixture(autouse=True)
def middlewares(monkeypatch: pytest.MonkeyPatch, collector: Any) -> Iterator[List[MoesifMiddleware]]:
    """Every MoesifMiddleware a test creates (Starlette builds them lazily); shut down at teardown so no worker
    thread, and no exit flush towards a stopped collector, outlives the test. (Every test here has a collector;
    asking for it here makes it stop after the middlewares have flushed to it.)"""
    made: List[MoesifMiddleware] = []
    original_init = moesifasgi.middleware.MoesifMiddleware.__init__

    def init(self: MoesifMiddleware, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(moesifasgi.middleware.MoesifMiddleware, "__init__", init)
    yield made
    for mw in made:
        mw.shutdown(timeout=2)


@pytest.fixture
def gates() -> Gates:
    return Gates()


@pytest.fixture
def settings(collector: Any) -> Callable[..., dict[str, Any]]:
    """``settings(**overrides)``: middleware settings sending to the collector, quickly."""

    def make(**overrides: Any) -> dict[str, Any]:
        return {"APPLICATION_ID": APP_ID, "BASE_URI": collector.url, "EVENT_BATCH_TIMEOUT": 0.05, **overrides}

    return make


@pytest.fixture
def serve() -> Iterator[Callable[..., UvicornServer]]:
    """``serve(app)`` starts a real uvicorn server and returns it; stopped at teardown."""
    servers: List[UvicornServer] = []

    def start(app: Any, **config: Any) -> UvicornServer:
        server = UvicornServer(app, **config).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(params=sorted(APPS))
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def served(
    framework: str, gates: Gates, settings: Callable[..., dict[str, Any]], serve: Callable[..., UvicornServer]
) -> Callable[..., UvicornServer]:
    """``served(**settings)``: the demo app of ``framework`` with MoesifMiddleware, running under uvicorn."""

    def start(**overrides: Any) -> UvicornServer:
        app = APPS[framework](gates)
        app.add_middleware(MoesifMiddleware, settings=settings(**overrides))
        return serve(app)

    return start
