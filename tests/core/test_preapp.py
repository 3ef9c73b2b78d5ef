"""The rules every adapter takes from the core before the app runs: the transaction id a call gets, and the
pre-app decision (early sampling, the user fallback, governance and the blocked answer). The adapters' shared
table tests (tests/reliability/test_rel_shared_rules.py) check that each adapter follows them."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Iterator

import pytest

from moesif_core import (
    Agent,
    PreApp,
    Settings,
    environ_header_pairs,
    json_body,
    lower_headers,
    transaction_id_for,
)
from moesif_core.appconfig import AppConfig, parse_rules
from moesif_core.remote import UNKNOWN_CONFIG

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

#: (incoming X-Moesif-Transaction-Id, reused?)
TRANSACTION_IDS = [
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
    ("<script>", False),
]


@pytest.mark.parametrize(("incoming", "reused"), TRANSACTION_IDS)
def test_transaction_id_for(incoming: Any, reused: bool) -> None:
    tid = transaction_id_for(incoming)
    if reused:
        assert tid == incoming
    else:
        assert UUID_RE.match(tid)


def test_new_ids_are_distinct_uuid4() -> None:
    ids = {transaction_id_for(None) for _ in range(2000)}
    assert len(ids) == 2000 and all(UUID_RE.match(i) for i in ids)
    for tid in list(ids)[:200]:
        u = uuid.UUID(tid)
        assert str(u) == tid and u.version == 4 and u.variant == uuid.RFC_4122


def test_header_helpers() -> None:
    environ = {
        "HTTP_X_API_KEY": "k",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "",
        "REMOTE_ADDR": "10.0.0.1",
        "wsgi.input": object(),
    }
    pairs = environ_header_pairs(environ)
    assert pairs == [("HTTP_X_API_KEY", "k"), ("CONTENT_TYPE", "application/json")]
    assert lower_headers(pairs, wsgi=True) == {"x-api-key": "k", "content-type": "application/json"}
    assert lower_headers([(b"X-Forwarded-For", b"1.2.3.4"), (b"x-forwarded-for", b"5.6.7.8")]) == {
        "x-forwarded-for": "1.2.3.4, 5.6.7.8"
    }
    assert json_body(b' {"plan": "free"}') == {"plan": "free"}
    assert json_body(b"plan=free") is None and json_body(b"{broken") is None and json_body(b"[" * 100_000) is None


RULES = [
    {
        "_id": "legacy",
        "type": "regex",
        "block": True,
        "applied_to": "matching",
        "regex_config": [{"conditions": [{"path": "request.route", "value": "^/legacy"}]}],
        "response": {"status": 410, "headers": {"X-Blocked-By": "moesif"}, "body": {"error": "gone"}},
    },
    {
        "_id": "hint",
        "type": "regex",
        "block": False,
        "applied_to": "matching",
        "regex_config": [{"conditions": [{"path": "request.route", "value": "^/hinted"}]}],
        "response": {"headers": {"X-Hint": "soon"}},
    },
    {
        "_id": "quota",
        "type": "user",
        "block": True,
        "applied_to": "matching",
        "variables": [{"name": "0", "path": "user_id"}],
        "regex_config": [],
        "response": {"status": 999, "body": "user {{0}} over quota"},
    },
]


@pytest.fixture
def agent() -> Iterator[Agent]:
    agent = Agent(Settings.from_mapping({"APPLICATION_ID": "unit", "BASE_URI": "http://127.0.0.1:9"}), user_agent="t")
    yield agent
    agent.shutdown(0)


def test_default_config_decides_nothing(agent: Agent) -> None:
    assert agent.wait_for_config(5)  # the collector is down: the default config (sample everything, no rules)
    preapp = PreApp(agent)
    assert preapp.begin() is None and preapp.begin() is None


def test_unknown_config_captures_undecided(agent: Agent) -> None:
    agent.remote._state = (UNKNOWN_CONFIG, ())  # as before the first fetch ends
    early = PreApp(agent).begin()
    assert early is not None and not early.governs
    assert early.sample("GET", "/x", {}, "10.0.0.1") is True and early.weight is None  # the worker decides


def test_sampling_drops_early(agent: Agent) -> None:
    agent.remote._state = (AppConfig.parse({"sample_rate": 0}), ())
    early = PreApp(agent).begin()
    assert early is not None and not early.governs
    assert early.sample("GET", "/x", {}, "10.0.0.1") is False and early.capture is False
    agent.remote._state = (AppConfig.parse({"sample_rate": 50}), ())
    weights = set()
    for _ in range(50):
        early = PreApp(agent).begin()
        assert early is not None
        if early.sample("GET", "/x", {}, "10.0.0.1"):
            weights.add(early.weight)
    assert weights == {2}


def test_blocked_answer_and_added_headers(agent: Agent) -> None:
    agent.remote._state = (
        AppConfig.parse({"user_rules": {"alice": [{"rules": "quota", "values": {"0": "alice"}}]}}),
        parse_rules(RULES),
    )
    preapp = PreApp(agent)

    def decide(path: str, headers: Any = None, user: Any = None) -> Any:
        early = preapp.begin()
        assert early is not None and early.governs and not early.needs_body
        assert early.sample("GET", path, headers or {}, "10.0.0.1") is True and early.weight is None
        early.govern("http://h" + path, user, None)
        return early

    legacy = decide("/legacy/x")
    assert legacy.blocked and legacy.blocked_by == "legacy" and legacy.status_line == "410 Gone"
    assert json.loads(legacy.body) == {"error": "gone"}
    assert dict(legacy.headers) == {"X-Blocked-By": "moesif", "Content-Type": "application/json"}
    assert dict(legacy.headers_with_length())["Content-Length"] == str(len(legacy.body))

    hinted = decide("/hinted")
    assert not hinted.blocked and hinted.headers == [("X-Hint", "soon")]
    assert not decide("/other").blocked and decide("/other").headers == []

    # IDENTIFY_USER's answer, else (None or "") the authorization header
    assert decide("/x", user="alice").status_line == "999 Blocked"
    assert decide("/x", {"authorization": "Basic YWxpY2U6cHc="}, "").blocked_by == "quota"
    assert not decide("/x", {"authorization": "Basic YWxpY2U6cHc="}, "bob").blocked
