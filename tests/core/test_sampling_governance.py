"""Sampling and governance from the server's config, in the core (adapters call into these)."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest
import requests
import responses

from moesif_collector import Collector
from moesif_core import Agent, RawCapture, Settings
from moesif_core.appconfig import AppConfig, parse_rules
from moesif_core.client import IngestionClient
from moesif_core.governance import RequestFacts, evaluate
from moesif_core.remote import RemoteConfig
from moesif_core.sampling import draw, sampling_fields, sampling_rate

CONFIG = {
    "sample_rate": 70,
    "user_sample_rate": {"alice": 10},
    "company_sample_rate": {"acme": 40},
    "regex_config": [
        {
            "conditions": [{"path": "request.route", "value": "^/health"}, {"path": "request.verb", "value": "GET"}],
            "sample_rate": 0,
        }
    ],
    "user_rules": {"alice": [{"rules": "quota", "values": {"0": "alice", "1": "free"}}, {"rules": "deleted-rule"}]},
    "company_rules": {"acme": [{"rules": "acme-hdr", "values": {"0": "acme"}}]},
}

RULES = [
    {
        "_id": "legacy",
        "type": "regex",
        "block": True,
        "applied_to": "matching",
        "regex_config": [
            {"conditions": [{"path": "request.route", "value": "^/v0/"}, {"path": "request.verb", "value": "POST"}]},
            {"conditions": [{"path": "request.headers.x-legacy", "value": "^1$"}]},
        ],
        "response": {
            "status": 410,
            "headers": {"X-Blocked-By": "moesif", "X-Shared": "regex"},
            "body": {"error": "gone"},
        },
    },
    {
        "_id": "quota",
        "type": "user",
        "block": True,
        "applied_to": "matching",
        "applied_to_unidentified": False,
        "variables": [{"name": "0", "path": "user_id"}, {"name": "1", "path": "plan"}, {"name": "2", "path": "x"}],
        "regex_config": [],
        "response": {
            "status": 402,
            "headers": {"X-Quota-User": "{{0}}", "X-Shared": "user"},
            "body": {"msg": "user {{0}} on plan {{1}} is over quota {{2}}", "list": ["{{0}}"]},
        },
    },
    {
        "_id": "acme-hdr",
        "type": "company",
        "block": False,
        "applied_to": "matching",
        "regex_config": [],
        "response": {"headers": {"X-Company": "{{0}}"}},
    },
    {
        "_id": "login",
        "type": "user",
        "block": True,
        "applied_to": "not_matching",
        "applied_to_unidentified": True,
        "regex_config": [{"conditions": [{"path": "request.route", "value": "^/private"}]}],
        "response": {"status": 401, "body": "login first"},
    },
    {
        "_id": "broken",
        "type": "regex",
        "block": True,
        "regex_config": [{"conditions": [{"path": "request.verb", "value": "("}]}],
        "response": {"status": 500, "body": {}},
    },
    {"type": "regex"},
]


def facts(path: str = "/", verb: str = "GET", **kw: Any) -> RequestFacts:
    return RequestFacts(
        verb=verb,
        uri="http://api.local" + path,
        path=path.split("?")[0],
        ip=kw.pop("ip", "203.0.113.7"),
        headers=kw.pop("headers", {}),
        **kw,
    )


def test_sampling_precedence() -> None:
    config = AppConfig.parse(CONFIG)
    assert sampling_rate(config, sampling_fields("GET", "/health/live", None, 200), "alice") == 0
    assert sampling_rate(config, sampling_fields("POST", "/health/live", None, 200), "alice") == 10
    assert sampling_rate(config, sampling_fields("GET", "/x", None, 200), "bob", "acme") == 40
    assert sampling_rate(config, sampling_fields("GET", "/x", None, 200), "bob", "other") == 70
    assert sampling_rate(AppConfig(), {}) == 100


def test_unknown_condition_path_does_not_disable_sampling() -> None:
    config = AppConfig.parse(
        {
            "sample_rate": 0,
            "regex_config": [{"conditions": [{"path": "request.headers.x", "value": "."}], "sample_rate": 100}],
        }
    )
    assert sampling_rate(config, sampling_fields("GET", "/", None, 200)) == 0


def test_weight_and_draw() -> None:
    rng = random.Random(1)
    assert draw(100) == (True, 1)
    assert draw(0, rng)[0] is False and draw(0, rng)[1] == 1
    assert draw(30, rng)[1] == 3 and draw(33.3, rng)[1] == 3 and draw(50, rng)[1] == 2
    kept = sum(draw(50, rng)[0] for _ in range(10_000))
    assert 4700 < kept < 5300


def test_malformed_documents_refused_whole_bad_entries_skipped() -> None:
    with pytest.raises(ValueError):
        AppConfig.parse([1, 2])
    with pytest.raises(ValueError):
        parse_rules({"not": "a list"})
    rules = parse_rules(RULES)
    assert [r.id for r in rules] == ["legacy", "quota", "acme-hdr", "login"]  # bad regex, no _id: skipped
    config = AppConfig.parse(
        {"sample_rate": 50, "regex_config": [{"conditions": [{"path": "x", "value": "("}], "sample_rate": 1}]}
    )
    assert config.sample_rate == 50 and config.regex_config == []


def test_regex_rule_blocks_with_json_body_and_content_type() -> None:
    rules, config = parse_rules(RULES), AppConfig.parse(CONFIG)
    d = evaluate(rules, config, facts("/v0/orders?x=1", "POST", user_id="bob"))
    assert d is not None and d.blocked_by == "legacy" and d.status == 410
    assert json.loads(d.body) == {"error": "gone"}
    assert d.headers["Content-Type"] == "application/json" and d.headers["X-Blocked-By"] == "moesif"
    d = evaluate(rules, config, facts("/other", headers={"x-legacy": "1"}, user_id="bob"))
    assert d is not None and d.blocked_by == "legacy"  # second condition group (OR)
    assert evaluate(rules, config, facts("/v0/orders", "GET", user_id="bob")) is None


def test_user_rule_wins_and_substitutes_variables() -> None:
    rules, config = parse_rules(RULES), AppConfig.parse(CONFIG)
    d = evaluate(rules, config, facts("/v0/x", "POST", user_id="alice", company_id="acme"))
    assert d is not None and d.blocked_by == "quota" and d.status == 402
    assert json.loads(d.body) == {"msg": "user alice on plan free is over quota UNKNOWN", "list": ["alice"]}
    assert d.headers["X-Quota-User"] == "alice" and d.headers["X-Shared"] == "user"  # later rule wins
    assert d.headers["X-Company"] == "acme" and d.headers["X-Blocked-By"] == "moesif"  # merged


def test_non_blocking_rule_only_adds_headers() -> None:
    rules, config = parse_rules(RULES), AppConfig.parse(CONFIG)
    d = evaluate(rules, config, facts("/x", user_id="carol", company_id="acme"))
    assert d is not None and not d.blocked and d.headers == {"X-Company": "acme"}


def test_unidentified_and_not_matching_rules() -> None:
    rules, config = parse_rules(RULES), AppConfig.parse(CONFIG)
    d = evaluate(rules, config, facts("/private/data"))  # nobody identified
    assert d is not None and d.blocked_by == "login" and json.loads(d.body) == "login first"
    d = evaluate(rules, config, facts("/private/data", user_id="dave"))  # identified, not in the cohort
    assert d is not None and d.blocked_by == "login"
    assert evaluate(rules, config, facts("/public", user_id="dave")) is None


def test_body_fields_and_ip() -> None:
    rules = parse_rules(
        [
            {
                "_id": "gql",
                "type": "regex",
                "block": True,
                "regex_config": [
                    {
                        "conditions": [
                            {"path": "request.body.operationName", "value": "^Delete"},
                            {"path": "request.ip_address", "value": "^203\\."},
                        ]
                    }
                ],
                "response": {"status": 403, "body": None},
            }
        ]
    )
    d = evaluate(rules, AppConfig(), facts("/graphql", "POST", body={"operationName": "DeleteUser"}))
    assert d is not None and d.status == 403 and d.body == b""
    assert evaluate(rules, AppConfig(), facts("/graphql", "POST", body={"operationName": "Get"})) is None


# -- end to end through the agent and the real collector ---------------------------------------------------------


def agent_for(collector: Collector, **kw: Any) -> Agent:
    a = Agent(
        Settings.from_mapping({"APPLICATION_ID": "s", "BASE_URI": collector.url, "EVENT_BATCH_TIMEOUT": 0.05, **kw}),
        user_agent="t/1",
    )
    assert a.wait_for_config(10)  # fetched since the agent was built
    return a


def send(agent: Agent, n: int, user: str | None = None, path: str = "/items") -> None:
    for i in range(n):
        agent.capture(
            RawCapture(
                method="GET",
                uri=f"http://app.local{path}?i={i}",
                request_time=time.time(),
                response_status=200,
                user_id=user,
            )
        )


def test_rate_zero_sends_nothing_fifty_sends_about_half(collector: Collector) -> None:
    collector.set_config({"sample_rate": 0})
    a = agent_for(collector)
    try:
        send(a, 200)
        assert a.flush(10)
        assert collector.count_events() == 0 and a.snapshot()["sampled_out"] == 200
        collector.set_config({"sample_rate": 50})
        a.remote.refresh_now()
        send(a, 1000)
        assert a.flush(10)
        events = collector.events()
        assert 400 < len(events) < 600  # binomial(1000, .5): 6+ standard deviations
        assert {e["weight"] for e in events} == {2}
    finally:
        a.shutdown(1)


def test_per_user_rate_applies_to_that_user_only(collector: Collector) -> None:
    collector.set_config({"sample_rate": 100, "user_sample_rate": {"alice": 0}})
    a = agent_for(collector)
    try:
        send(a, 50, user="alice")
        send(a, 50, user="bob")
        assert a.flush(10)
        assert {e["user_id"] for e in collector.events()} == {"bob"} and collector.count_events() == 50
    finally:
        a.shutdown(1)


def test_etag_change_is_picked_up(collector: Collector) -> None:
    a = agent_for(collector)
    a.remote.min_refetch_interval = 0.2
    try:
        before = a.remote.fetches
        collector.set_config({"sample_rate": 0})
        send(a, 1)  # this batch's response carries the new ETag
        deadline = time.monotonic() + 10
        while a.remote.current()[0].sample_rate != 0:
            assert time.monotonic() < deadline, "the new config was not fetched after the ETag changed"
            time.sleep(0.01)
        assert a.remote.fetches > before and a.remote.etag == collector.config_etag
    finally:
        a.shutdown(1)


@responses.activate
def test_malformed_config_keeps_last_good(moesif_log: pytest.LogCaptureFixture) -> None:
    """The local collector refuses to serve a malformed file, so a fake server stands in for a broken one."""
    base = "http://127.0.0.1:9"
    responses.get(base + "/v1/config", json={"sample_rate": 25}, headers={"X-Moesif-Config-ETag": "e1"})
    responses.get(base + "/v1/rules", json=RULES[:1])
    remote = RemoteConfig(IngestionClient("s", base))
    remote.refresh_now()
    assert remote.current()[0].sample_rate == 25 and len(remote.current()[1]) == 1 and remote.etag == "e1"
    responses.replace(responses.GET, base + "/v1/config", body="{not json", headers={"X-Moesif-Config-ETag": "e2"})
    responses.replace(responses.GET, base + "/v1/rules", json={"not": "a list"})
    remote.refresh_now()
    assert remote.current()[0].sample_rate == 25 and len(remote.current()[1]) == 1
    assert "/v1/config is malformed" in moesif_log.text and "/v1/rules is malformed" in moesif_log.text
    responses.replace(responses.GET, base + "/v1/config", status=503)
    responses.replace(responses.GET, base + "/v1/rules", body=requests.ConnectionError("down"))
    remote.refresh_now()
    assert remote.current()[0].sample_rate == 25 and len(remote.current()[1]) == 1
