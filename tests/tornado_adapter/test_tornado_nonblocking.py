"""Nothing on the IOLoop waits for the collector: a hung or absent collector does not slow the app down, and what
was queued arrives once the collector answers again."""

from __future__ import annotations

import time
from typing import Any

import requests
import tornado.web

from moesiftornado import MoesifMiddleware


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"hello": "world"})


def test_a_hung_collector_does_not_block_the_loop(collector: Any, serve: Any, make_middleware: Any) -> None:
    durations: list[float] = []
    mw = make_middleware(REQUEST_TIMEOUT=30, BATCH_SIZE=2)
    original = mw.log_event

    def timed(handler: tornado.web.RequestHandler) -> None:
        t0 = time.perf_counter()
        original(handler)
        durations.append(time.perf_counter() - t0)

    app = tornado.web.Application([(r"/", Hello)], log_function=timed)
    mw.attach(app)
    server = serve(app)
    collector.set_faults(mode="hang")
    session = requests.Session()
    t0 = time.monotonic()
    for _ in range(30):
        assert session.get(server.url + "/", timeout=10).json() == {"hello": "world"}
    elapsed = time.monotonic() - t0
    # workers are stuck in a POST that will not be answered for 30 s; the app does not notice
    assert elapsed < 10, elapsed
    deadline = time.monotonic() + 10  # the last log_event may run just after the client got its response
    while len(durations) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(durations) == 30
    assert max(durations) < 1.0, max(durations)
    collector.reset_faults()
    assert len(collector.wait_for_events(30, timeout=40)) == 30


def test_collector_down_then_back(collector: Any, serve: Any, tmp_path: Any) -> None:
    from moesif_collector import Collector

    port = collector.port
    mw = MoesifMiddleware({"APPLICATION_ID": "x", "BASE_URI": collector.url, "EVENT_BATCH_TIMEOUT": 0.05})
    collector.stop()  # nothing listens on its port now
    back = None
    try:
        server = serve(tornado.web.Application([(r"/", Hello)], log_function=mw.log_event))
        session = requests.Session()
        t0 = time.monotonic()
        for _ in range(10):
            assert session.get(server.url + "/", timeout=10).status_code == 200
        assert time.monotonic() - t0 < 10
        back = Collector(port=port, db_path=str(tmp_path / "back.db")).start()
        assert len(back.wait_for_events(10, timeout=40)) == 10  # retried until it answered
    finally:
        mw.shutdown(2)
        if back is not None:
            back.stop()
