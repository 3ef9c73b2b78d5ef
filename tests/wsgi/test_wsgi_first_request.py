"""Sampling and governance hold from the first request: the config is fetched when the middleware is built, and
calls captured before it arrives are decided when it does (at the rate then in force, with its weight).

The collector delays its config answers (a fault on ``GET /v1/config`` and ``/v1/rules``) so that the first calls
certainly arrive while the config is still unknown, as they do in a freshly started app under load.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Tuple

import requests
import wsgi_apps
from wsgi_support import gunicorn, settings_for

from moesifwsgi import MoesifMiddleware

BLOCK_ALL = {
    "_id": "maintenance",
    "type": "regex",
    "block": True,
    "applied_to": "matching",
    "regex_config": [],
    "response": {"status": 503, "body": {"error": "maintenance"}},
}


def fresh_app(collector: Any, config: Dict[str, Any], rules: List[Any], delay: float) -> Tuple[Any, Any, List[str]]:
    """A Flask app with the middleware, built now; the collector answers the config fetch after ``delay`` s."""
    collector.set_config(config)
    collector.set_rules(rules)
    if delay:
        collector.set_faults("ok", delay=delay, times=2, scope="all")  # the two config GETs, nothing else
    app = wsgi_apps.flask_app()
    calls: List[str] = []
    inner = app.wsgi_app

    def counting(environ: Dict[str, Any], start_response: Any) -> Any:
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    app.wsgi_app = MoesifMiddleware(counting, settings_for(collector))
    return app, app.wsgi_app, calls


def test_rate_zero_sends_none_of_the_first_hundred(collector: Any) -> None:
    app, mw, _ = fresh_app(collector, {"sample_rate": 0}, [], delay=0.5)
    assert not mw.agent.remote.known  # the fetch is under way: these calls are captured undecided
    client = app.test_client()
    for i in range(100):
        assert client.get(f"/items/{i}").json == {"id": str(i)}
    assert mw.flush(10)
    assert collector.count_events() == 0
    snap = mw.agent.snapshot()
    assert snap["sent"] == 0 and snap["sampled_out"] == snap["queued"] > 0
    mw.shutdown(2)


def test_half_rate_events_carry_weight_two_from_the_first(collector: Any) -> None:
    app, mw, _ = fresh_app(collector, {"sample_rate": 50}, [], delay=0.5)
    assert not mw.agent.remote.known
    client = app.test_client()
    for i in range(100):
        assert client.get(f"/items/{i}").json == {"id": str(i)}
    assert mw.flush(10)
    events = collector.events()
    assert {e["weight"] for e in events} == {2}
    assert 25 <= len(events) <= 75  # binomial(100, .5): outside once in 10^6 runs
    mw.shutdown(2)


def test_blocking_rule_blocks_the_very_first_request(collector: Any) -> None:
    app, mw, calls = fresh_app(collector, {}, [BLOCK_ALL], delay=0)
    assert mw.agent.wait_for_config(5)  # the fetch had time (an app that wants rules from the start waits so)
    first = app.test_client().get("/items/1")
    assert first.status_code == 503 and first.get_json() == {"error": "maintenance"}
    assert calls == []
    assert mw.flush(10)
    (event,) = collector.wait_for_events(1)
    assert event["blocked_by"] == "maintenance" and event["response"]["status"] == 503
    mw.shutdown(2)


def test_calls_before_the_rules_are_known_go_through(collector: Any) -> None:
    """The documented behaviour while the rules are still unknown: nothing is blocked (the app is called)."""
    app, mw, calls = fresh_app(collector, {}, [BLOCK_ALL], delay=0.5)
    client = app.test_client()
    assert client.get("/items/early").json == {"id": "early"} and calls == ["/items/early"]
    assert mw.agent.wait_for_config(5)
    assert client.get("/items/late").json == {"error": "maintenance"} and calls == ["/items/early"]
    mw.shutdown(2)


def both_workers(url: str, done: Callable[[Dict[int, Any]], bool]) -> Dict[int, Any]:
    """``/_agent`` of each of the two workers, asked in bursts of concurrent slow calls (a sync worker serves one at
    a time, so a burst reaches both) until ``done`` holds for what they said (the latest answer per pid)."""
    seen: Dict[int, Any] = {}
    deadline = time.monotonic() + 20
    with ThreadPoolExecutor(4) as pool:
        while not (len(seen) == 2 and done(seen)):
            assert time.monotonic() < deadline, seen
            for r in pool.map(lambda _: requests.get(url + "/_agent?sleep=0.2", timeout=10).json(), range(4)):
                seen[r["pid"]] = r
    return seen


def test_preload_workers_inherit_the_masters_config(collector: Any) -> None:
    collector.set_config({"sample_rate": 0})
    with gunicorn("flask", collector.url, "--preload", "-w", "2", MOESIF_WAIT_CONFIG="1") as url:
        first = both_workers(url, lambda seen: True)
        for info in first.values():
            # each worker's calls (its very first included: the health check, or this one) were dropped before
            # capture, with the config the master fetched before forking: nothing was ever queued
            assert info["sample_rate"] == 0 and info["snapshot"]["queued"] == 0
        # and each worker then fetched the config itself
        both_workers(url, lambda seen: all(info["fetches"] >= 1 for info in seen.values()))
    assert collector.count_events() == 0
