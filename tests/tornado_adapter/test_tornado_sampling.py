"""Sampling from the collector's app config (``/v1/config``), end to end under a real Tornado server: a call that
is not sampled sends nothing (its response is unchanged), kept calls carry their weight. Governance rules are not
applied by moesiftornado (``log_function`` runs after the response; see the module docstring)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import requests
import tornado.web
from tornado_support import UUID_RE, TornadoServer

from moesiftornado import MoesifMiddleware


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"hello": "world"})


def drain(server: TornadoServer) -> None:
    """Tornado logs a request (calls ``log_event``) after its response has left, in the same loop callback: a no-op
    run on the server's loop afterwards proves every ``log_event`` so far has run."""
    assert server.loop is not None
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), server.loop).result(10)


def start(serve: Callable[..., TornadoServer], mw: MoesifMiddleware) -> TornadoServer:
    app = tornado.web.Application([(r"/.*", Hello)], log_function=mw.log_event)
    mw.agent.start()
    mw.agent.remote.refresh_now()  # the config is in force from the first request
    return serve(app)


def test_sample_rate_zero_sends_nothing(
    collector: Any, serve: Callable[..., TornadoServer], make_middleware: Callable[..., MoesifMiddleware]
) -> None:
    collector.set_config(
        {
            "sample_rate": 0,
            "regex_config": [{"conditions": [{"path": "request.route", "value": "^/kept$"}], "sample_rate": 100}],
        }
    )
    mw = make_middleware()
    server = start(serve, mw)
    with requests.Session() as s:
        for _ in range(10):
            r = s.get(f"{server.url}/dropped", timeout=10)
            assert r.status_code == 200 and r.json() == {"hello": "world"}
            assert UUID_RE.match(r.headers["x-moesif-transaction-id"])
        kept = s.get(f"{server.url}/kept", timeout=10)
    drain(server)
    assert mw.flush(5)
    events = collector.events()
    assert [e["request"]["uri"] for e in events] == [f"{server.url}/kept"]  # events flow; the rest were dropped
    assert events[0]["weight"] == 1
    assert events[0]["transaction_id"] == kept.headers["x-moesif-transaction-id"]


def test_sample_rate_100_sends_all(
    collector: Any, serve: Callable[..., TornadoServer], make_middleware: Callable[..., MoesifMiddleware]
) -> None:
    collector.set_config({"sample_rate": 100})
    mw = make_middleware()
    server = start(serve, mw)
    with requests.Session() as s:
        for i in range(20):
            assert s.get(f"{server.url}/all/{i}", timeout=10).status_code == 200
    drain(server)
    assert mw.flush(5)
    events = collector.wait_for_events(20)
    assert sorted(e["request"]["uri"] for e in events) == sorted(f"{server.url}/all/{i}" for i in range(20))
    assert {e["weight"] for e in events} == {1}


def test_half_sampling_sends_about_half_with_weight_two(
    collector: Any, serve: Callable[..., TornadoServer], make_middleware: Callable[..., MoesifMiddleware]
) -> None:
    collector.set_config({"sample_rate": 50})
    mw = make_middleware()
    server = start(serve, mw)
    with requests.Session() as s:
        for _ in range(60):
            assert s.get(f"{server.url}/half", timeout=10).status_code == 200
    drain(server)
    assert mw.flush(5)
    events = collector.events()
    assert 10 <= len(events) <= 50, len(events)  # P(outside) < 1e-6 at 50 %
    assert {e["weight"] for e in events} == {2}
