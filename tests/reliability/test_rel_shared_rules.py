"""The rules the core decides, through every adapter: the same tables, the same answers.

Each adapter's app is served for real (Flask under werkzeug, Starlette under uvicorn, Django's WSGI handler,
Tornado's ``HTTPServer``, aiohttp's own server; ``KINDS`` in ``rel_support``) with the real collector, and the same
table runs through every one of them:

- **Transaction ids**: which incoming ``X-Moesif-Transaction-Id`` is reused (a sane token) and which is replaced;
  either way the client's header, the event's ``transaction_id`` and the event's request header agree.
- **The pre-app decision**: early sampling, a blocking rule, a non-blocking rule's header, a user rule met through
  the authorization header, a ``request.body.*`` rule. Tornado samples but never blocks or adds headers (its
  ``log_function`` runs after the handler): its column of the table says so.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from rel_support import KINDS, Served, served, settings_for

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TID = "X-Moesif-Transaction-Id"

#: (incoming header value or None for no header, reused?)
TRANSACTION_IDS: List[Tuple[Optional[str], bool]] = [
    (None, False),
    ("", False),
    ("825e1f89-4a88-4820-99ac-d541cefb8e04", True),
    ("upstream-id-1", True),
    ("svc:req_42.7~a+b/c==", True),
    ("x" * 128, True),
    ("x" * 129, False),
    ("a b", False),
    ("tab\there", False),
    ("caf\xe9", False),
]


class App:
    def __init__(self, kind: str, served: Served) -> None:
        self.kind = kind
        self.url = served.url
        self.agent = served.agent


@pytest.fixture(params=KINDS)
def app(request: Any, collector: Any) -> Iterator[App]:
    with served(request.param, settings_for(collector.url)) as s:
        yield App(request.param, s)


def header(headers: Dict[str, str], name: str) -> Optional[str]:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def case_of(event: Dict[str, Any]) -> str:
    return parse_qs(urlsplit(event["request"]["uri"]).query)["case"][0]


def test_transaction_id_table(app: App, collector: Any) -> None:
    sent: Dict[str, str] = {}
    with requests.Session() as http:
        for i, (incoming, _) in enumerate(TRANSACTION_IDS):
            headers = {} if incoming is None else {TID: incoming}
            r = http.get(f"{app.url}/ping", params={"case": str(i)}, headers=headers, timeout=10)
            assert r.status_code == 200 and r.text == "pong"
            sent[str(i)] = r.headers[TID]
    assert app.agent.flush(10)
    events = {case_of(e): e for e in collector.wait_for_events(len(TRANSACTION_IDS))}
    for i, (incoming, reused) in enumerate(TRANSACTION_IDS):
        tid, event = sent[str(i)], events[str(i)]
        if reused:
            assert tid == incoming, (incoming, tid)
        else:
            assert UUID_RE.match(tid), (incoming, tid)
        assert event["transaction_id"] == tid
        assert header(event["request"]["headers"], TID) == tid
        assert header(event["response"]["headers"], TID) == tid


RULES = [
    {
        "_id": "legacy",
        "type": "regex",
        "block": True,
        "applied_to": "matching",
        "regex_config": [
            {
                "conditions": [
                    {"path": "request.route", "value": "^/ping"},
                    {"path": "request.headers.x-legacy", "value": "^1$"},
                ]
            }
        ],
        "response": {"status": 410, "headers": {"X-Blocked-By": "moesif"}, "body": {"error": "gone"}},
    },
    {
        "_id": "hint",
        "type": "regex",
        "block": False,
        "applied_to": "matching",
        "regex_config": [{"conditions": [{"path": "request.headers.x-want-hint", "value": "^yes$"}]}],
        "response": {"headers": {"X-Hint": "soon"}},
    },
    {
        "_id": "quota",
        "type": "user",
        "block": True,
        "applied_to": "matching",
        "variables": [{"name": "0", "path": "user_id"}],
        "regex_config": [],
        "response": {"status": 402, "body": {"msg": "user {{0}} is over quota"}},
    },
    {
        "_id": "free-plan",
        "type": "regex",
        "block": True,
        "applied_to": "matching",
        "regex_config": [{"conditions": [{"path": "request.body.plan", "value": "^free$"}]}],
        "response": {"status": 403, "body": "upgrade"},
    },
]
CONFIG = {"user_rules": {"alice": [{"rules": "quota", "values": {"0": "alice"}}]}}
ALICE = {"Authorization": "Basic YWxpY2U6cHc="}  # alice:pw

#: (name, method, path, headers, JSON body, blocked_by, status, body, added header)
DECISIONS: List[Tuple[str, str, str, Dict[str, str], Any, Optional[str], int, Any, Optional[str]]] = [
    ("plain", "GET", "/ping", {}, None, None, 200, "pong", None),
    ("regex-block", "GET", "/ping", {"X-Legacy": "1"}, None, "legacy", 410, {"error": "gone"}, None),
    ("hint", "GET", "/ping", {"X-Want-Hint": "yes"}, None, None, 200, "pong", "soon"),
    ("user-from-authorization", "GET", "/ping", ALICE, None, "quota", 402, {"msg": "user alice is over quota"}, None),
    ("body-rule", "POST", "/echo", {}, {"plan": "free"}, "free-plan", 403, "upgrade", None),
    ("body-rule-other-plan", "POST", "/echo", {}, {"plan": "pro"}, None, 200, None, None),
]


def test_pre_app_decision_table(app: App, collector: Any) -> None:
    blocks = app.kind != "tornado"  # Tornado's log_function runs after the handler: it samples, nothing more
    collector.set_rules(RULES)
    collector.set_config(CONFIG)
    app.agent.remote.refresh_now()
    answers = {}
    with requests.Session() as http:
        for name, method, path, headers, body, *_ in DECISIONS:
            answers[name] = http.request(
                method, f"{app.url}{path}", params={"case": name}, headers=headers, json=body, timeout=10
            )
    assert app.agent.flush(10)
    events = {case_of(e): e for e in collector.wait_for_events(len(DECISIONS))}
    for name, _, _, _, _, blocked_by, status, body, added in DECISIONS:
        r, event = answers[name], events[name]
        assert r.headers[TID] == event["transaction_id"], name
        if blocks and blocked_by:
            assert (r.status_code, event["response"]["status"], event["blocked_by"]) == (status, status, blocked_by)
            assert r.json() == body and r.headers["Content-Type"] == "application/json", name
        else:
            assert r.status_code == event["response"]["status"] == 200, name
            assert event["blocked_by"] is None, name
            if body == "pong":
                assert r.text == "pong", name
        assert r.headers.get("X-Hint") == (added if blocks else None), name


def test_early_sampling_table(app: App, collector: Any) -> None:
    """Rate 0 for one route, 50 for the rest: the dropped route still answers (with its transaction id) and sends
    nothing; the rest arrive about half the time, each with weight 2."""
    collector.set_config(
        {
            "sample_rate": 50,
            "regex_config": [{"conditions": [{"path": "request.route", "value": "^/echo"}], "sample_rate": 0}],
        }
    )
    app.agent.remote.refresh_now()
    n = 40
    with requests.Session() as http:
        for i in range(n):
            dropped = http.post(f"{app.url}/echo", params={"case": f"echo-{i}"}, json={"i": i}, timeout=10)
            assert dropped.status_code == 200 and UUID_RE.match(dropped.headers[TID])
            kept = http.get(f"{app.url}/ping", params={"case": f"ping-{i}"}, timeout=10)
            assert kept.text == "pong" and UUID_RE.match(kept.headers[TID])
    assert app.agent.flush(10)  # the collector stores a batch before it answers: everything sent is there
    events = collector.events()
    assert all(case_of(e).startswith("ping-") for e in events)
    assert 0 < len(events) < n  # 50%: all or none of 40 is a one-in-a-trillion chance
    assert {e["weight"] for e in events} == {2}


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_holds_before_the_config_arrives(kind: str, collector: Any) -> None:
    """A freshly started app whose config is slow to arrive: the calls made meanwhile are captured undecided and
    sampled by the worker once it is there, so the rule in force holds from the first request (weight included)."""
    collector.set_config(
        {
            "sample_rate": 50,
            "regex_config": [{"conditions": [{"path": "request.route", "value": "^/echo"}], "sample_rate": 0}],
        }
    )
    collector.set_faults("ok", delay=1.0, times=2, scope="all")  # config and rules answer after 1 s each
    n = 20
    with served(kind, settings_for(collector.url)) as app, requests.Session() as http:
        for i in range(n):
            http.post(f"{app.url}/echo", params={"case": f"echo-{i}"}, json={"i": i}, timeout=10)
            assert http.get(f"{app.url}/ping", params={"case": f"ping-{i}"}, timeout=10).text == "pong"
        assert app.agent.flush(10)
        assert app.agent.snapshot()["sampled_out"] > 0  # some calls were decided late, by the worker
    events = collector.events()
    assert all(case_of(e).startswith("ping-") for e in events)
    assert 0 < len(events) < n  # 50%: all or none of 20 is a one-in-a-million chance
    assert {e["weight"] for e in events} == {2}
