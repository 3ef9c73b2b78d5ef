"""The server's config in a WSGI app: governance rules block or add headers before the app runs, and sampling
drops calls (early when it can). Rules and config are set on the real collector and fetched by the agent."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests
import wsgi_apps
from wsgi_support import BASIC_ALICE, b64, check_shape, serve, settings_for

BLOCK_LEGACY = {
    "_id": "legacy",
    "type": "regex",
    "block": True,
    "applied_to": "matching",
    "regex_config": [
        {"conditions": [{"path": "request.route", "value": "^/items/legacy"}, {"path": "request.verb", "value": "GET"}]}
    ],
    "response": {"status": 410, "headers": {"X-Blocked-By": "moesif"}, "body": {"error": "gone"}},
}
HINT = {
    "_id": "hint",
    "type": "regex",
    "block": False,
    "applied_to": "matching",
    "regex_config": [{"conditions": [{"path": "request.route", "value": "^/items/hinted"}]}],
    "response": {"headers": {"X-Quota-Hint": "soon"}},
}
QUOTA = {
    "_id": "quota",
    "type": "user",
    "block": True,
    "applied_to": "matching",
    "applied_to_unidentified": False,
    "variables": [{"name": "0", "path": "user_id"}],
    "regex_config": [],
    "response": {"status": 402, "headers": {"X-Quota-User": "{{0}}"}, "body": {"msg": "user {{0}} is over quota"}},
}
FREE_PLAN = {
    "_id": "free-plan",
    "type": "regex",
    "block": True,
    "applied_to": "matching",
    "regex_config": [{"conditions": [{"path": "request.body.plan", "value": "^free$"}]}],
    "response": {"status": 403, "body": "upgrade"},
}


@pytest.fixture
def served(collector: Any) -> Iterator[Any]:
    """``served(framework, rules, config)`` -> (url, middleware, calls): the app counts the calls it served."""
    stack: List[Tuple[Any, Any]] = []

    def _served(framework: str, rules: List[Any], config: Dict[str, Any]) -> Tuple[str, Any, List[str]]:
        collector.set_rules(rules)
        collector.set_config(config)
        calls: List[str] = []
        app = wsgi_apps.FRAMEWORKS[framework]()
        inner = app.wsgi_app if framework == "flask" else app

        def counting(environ: Dict[str, Any], start_response: Any) -> Any:
            calls.append(environ["PATH_INFO"])
            return inner(environ, start_response)

        from moesifwsgi import MoesifMiddleware

        mw = MoesifMiddleware(counting, settings_for(collector))
        mw.agent.remote.refresh_now()  # the background fetch would do it too; tests do not wait for it
        ctx = serve(mw)
        server = ctx.__enter__()
        stack.append((ctx, mw))
        return server.url, mw, calls

    yield _served
    for ctx, mw in stack:
        ctx.__exit__(None, None, None)
        mw.shutdown(2)


def events_when(collector: Any, mw: Any, n: int) -> List[Dict[str, Any]]:
    mw.flush(10)
    events = collector.wait_for_events(n, 10)
    for e in events:
        check_shape(e)
    return events


@pytest.mark.parametrize("framework", ["flask", "bottle", "pyramid"])
def test_blocking_rule_answers_without_the_app(served: Any, collector: Any, framework: str) -> None:
    url, mw, calls = served(framework, [BLOCK_LEGACY, HINT], {})
    blocked = requests.get(url + "/items/legacy", timeout=10)
    hinted = requests.get(url + "/items/hinted", timeout=10)
    assert blocked.status_code == 410 and blocked.json() == {"error": "gone"}
    assert blocked.headers["X-Blocked-By"] == "moesif"
    assert blocked.headers["Content-Type"] == "application/json"
    assert blocked.headers["Content-Length"] == str(len(blocked.content))
    assert calls == ["/items/hinted"]
    assert hinted.status_code == 200 and hinted.json() == {"id": "hinted"}
    assert hinted.headers["X-Quota-Hint"] == "soon"
    events = {e["request"]["uri"].rsplit("/", 1)[1]: e for e in events_when(collector, mw, 2)}
    b, h = events["legacy"], events["hinted"]
    assert b["blocked_by"] == "legacy" and b["response"]["status"] == 410
    assert b["response"]["body"] == {"error": "gone"}
    assert b["response"]["headers"]["X-Blocked-By"] == "moesif"
    assert b["transaction_id"] == blocked.headers["X-Moesif-Transaction-Id"]
    assert h["blocked_by"] is None and h["response"]["headers"]["X-Quota-Hint"] == "soon"


def test_user_rule_with_cohort_values(served: Any, collector: Any) -> None:
    url, mw, calls = served("flask", [QUOTA], {"user_rules": {"alice": [{"rules": "quota", "values": {"0": "alice"}}]}})
    alice = requests.get(url + "/items/1", headers={"Authorization": BASIC_ALICE}, timeout=10)
    bob = requests.get(url + "/items/2", auth=("bob", "pw"), timeout=10)
    assert alice.status_code == 402 and alice.json() == {"msg": "user alice is over quota"}
    assert alice.headers["X-Quota-User"] == "alice"
    assert bob.status_code == 200 and calls == ["/items/2"]
    events = events_when(collector, mw, 2)
    assert sorted((e["user_id"], e["blocked_by"]) for e in events) == [("alice", "quota"), ("bob", None)]


def test_identify_user_callback_is_used_for_governance(served: Any, collector: Any) -> None:
    config = {"user_rules": {"u-7": [{"rules": "quota", "values": {"0": "u-7"}}]}}
    collector.set_rules([QUOTA])
    collector.set_config(config)
    from moesifwsgi import MoesifMiddleware

    app = wsgi_apps.flask_app()
    mw = MoesifMiddleware(
        app.wsgi_app,
        settings_for(collector, IDENTIFY_USER=lambda app, environ, response_headers=None: environ.get("HTTP_X_USER")),
    )
    mw.agent.remote.refresh_now()
    app.wsgi_app = mw
    try:
        with serve(app) as server:
            r = requests.get(server.url + "/items/1", headers={"X-User": "u-7"}, timeout=10)
            assert r.status_code == 402 and r.json() == {"msg": "user u-7 is over quota"}
            assert requests.get(server.url + "/items/1", headers={"X-User": "u-8"}, timeout=10).status_code == 200
    finally:
        mw.shutdown(2)


def test_body_rule_reads_ahead_and_the_app_still_gets_the_body(served: Any, collector: Any) -> None:
    url, mw, calls = served("flask", [FREE_PLAN], {})
    blocked = requests.post(url + "/echo", json={"plan": "free"}, timeout=10)
    passed = requests.post(url + "/echo", json={"plan": "pro", "pad": "x" * 5000}, timeout=10)
    assert blocked.status_code == 403 and blocked.json() == "upgrade"
    assert passed.status_code == 200 and passed.json()["echo"] == {"plan": "pro", "pad": "x" * 5000}
    assert calls == ["/echo"]
    events = events_when(collector, mw, 2)
    by_plan = {e["request"]["body"]["plan"]: e for e in events}
    assert by_plan["free"]["blocked_by"] == "free-plan"
    assert by_plan["free"]["response"]["body"] == b64(b'"upgrade"')  # a JSON string is not an object: base64
    assert by_plan["pro"]["response"]["status"] == 200


def test_sampling_rate_zero_sends_nothing_and_route_rules_apply(served: Any, collector: Any) -> None:
    config = {
        "sample_rate": 100,
        "regex_config": [{"conditions": [{"path": "request.route", "value": "^/items/"}], "sample_rate": 0}],
    }
    url, mw, calls = served("flask", [], config)
    for i in range(5):
        assert requests.get(url + f"/items/{i}", timeout=10).status_code == 200
    r = requests.post(url + "/echo", json={"kept": True}, timeout=10)
    assert "X-Moesif-Transaction-Id" in r.headers
    events_when(collector, mw, 1)  # flush() returned: everything queued has been sent and acknowledged
    events = collector.events()
    assert [e["request"]["uri"].rsplit("/", 1)[1] for e in events] == ["echo"]
    assert events[0]["weight"] == 1
    assert len(calls) == 6


def test_user_sample_rate_is_decided_after_the_response(served: Any, collector: Any) -> None:
    url, mw, _ = served("flask", [], {"user_sample_rate": {"alice": 0}, "sample_rate": 50})
    for _ in range(3):
        requests.get(url + "/items/a", headers={"Authorization": BASIC_ALICE}, timeout=10)
    for _ in range(40):
        requests.get(url + "/items/b", auth=("bob", "pw"), timeout=10)
    assert mw.flush(10)  # everything queued has been decided, sent and acknowledged
    events = collector.events()
    sent = len(events)
    assert all(e["user_id"] == "bob" for e in events)
    assert all(e["weight"] == 2 for e in events)
    assert 5 <= sent <= 35  # about half of bob's 40 at rate 50 (binomial: outside this range once in 10^5 runs)
