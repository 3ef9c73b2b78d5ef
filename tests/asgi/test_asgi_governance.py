"""Sampling and governance from the collector's app config and rules (``/v1/config``, ``/v1/rules``), end to end
under uvicorn: blocked calls never reach the app, non-blocking rule headers reach the client, rules on the JSON
body read it ahead without taking it from the app, and sampled-out calls send nothing."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List

import httpx
from asgi_support import UUID_RE, Gates, UvicornServer, check_shape, event_for

from moesifasgi import MoesifMiddleware

BLOCK_ITEMS = {
    "_id": "rule-items",
    "type": "regex",
    "name": "block items",
    "block": True,
    "applied_to": "matching",
    "applied_to_unidentified": True,
    "regex_config": [{"conditions": [{"path": "request.route", "value": "^/items/"}]}],
    "response": {"status": 429, "headers": {"X-Blocked-By": "moesif"}, "body": {"error": "slow down"}},
}
TAG_HELLO = {
    "_id": "rule-hello",
    "type": "regex",
    "name": "tag hello",
    "block": False,
    "applied_to": "matching",
    "applied_to_unidentified": True,
    "regex_config": [{"conditions": [{"path": "request.route", "value": "^/hello"}]}],
    "response": {"status": 200, "headers": {"X-Plan": "free"}, "body": None},
}
BLOCK_DELETE_BODY = {
    "_id": "rule-body",
    "type": "regex",
    "name": "no deletes",
    "block": True,
    "applied_to": "matching",
    "applied_to_unidentified": True,
    "regex_config": [{"conditions": [{"path": "request.body.action", "value": "^delete$"}]}],
    "response": {"status": 403, "headers": {}, "body": {"error": "deletes are off"}},
}
QUOTA_USER = {
    "_id": "rule-quota",
    "type": "user",
    "name": "quota",
    "block": True,
    "applied_to": "matching",
    "applied_to_unidentified": False,
    "variables": [{"name": "0", "path": "user_id"}],
    "regex_config": [],
    "response": {"status": 402, "headers": {"X-Quota-User": "{{0}}"}, "body": {"msg": "user {{0}} is over quota"}},
}


def start(served: Callable[..., UvicornServer], middlewares: List[MoesifMiddleware], **settings: Any) -> UvicornServer:
    server = served(**settings)
    for mw in middlewares:  # built at lifespan start-up; fetch the config now rather than in the background
        mw.agent.remote.refresh_now()
    return server


def test_regex_rules_block_and_tag(
    served: Callable[..., UvicornServer], collector: Any, gates: Gates, middlewares: List[MoesifMiddleware]
) -> None:
    collector.set_rules([BLOCK_ITEMS, TAG_HELLO])
    server = start(served, middlewares)
    with httpx.Client(base_url=server.url) as client:
        blocked = client.get("/items/1")
        tagged = client.get("/hello")
    assert blocked.status_code == 429
    assert blocked.json() == {"error": "slow down"}
    assert blocked.headers["x-blocked-by"] == "moesif"
    assert blocked.headers["content-type"] == "application/json"
    assert UUID_RE.match(blocked.headers["x-moesif-transaction-id"])
    assert tagged.status_code == 200 and tagged.text == "hello" and tagged.headers["x-plan"] == "free"
    events = collector.wait_for_events(2)
    event = event_for(events, "/items/1")
    check_shape(event)
    assert event["blocked_by"] == "rule-items"
    assert event["response"]["status"] == 429
    assert event["response"]["body"] == {"error": "slow down"}
    assert event["transaction_id"] == blocked.headers["x-moesif-transaction-id"]
    hello = event_for(events, "/hello")
    assert hello["blocked_by"] is None and hello["response"]["headers"]["x-plan"] == "free"


def test_blocked_call_never_reaches_the_app(
    served: Callable[..., UvicornServer], collector: Any, gates: Gates, middlewares: List[MoesifMiddleware]
) -> None:
    rule = dict(BLOCK_ITEMS, regex_config=[{"conditions": [{"path": "request.route", "value": "^/background"}]}])
    collector.set_rules([rule])
    server = start(served, middlewares)
    assert httpx.get(server.url + "/background").status_code == 429
    collector.wait_for_events(1)
    assert not gates["background-ran"].is_set()


def test_rules_on_the_body_read_it_ahead_and_the_app_still_gets_it(
    served: Callable[..., UvicornServer], collector: Any, middlewares: List[MoesifMiddleware]
) -> None:
    collector.set_rules([BLOCK_DELETE_BODY])
    server = start(served, middlewares)
    with httpx.Client(base_url=server.url) as client:
        denied = client.post("/echo", json={"action": "delete", "id": 1})
        allowed = client.post("/echo", json={"action": "read", "pad": "p" * 100_000})
    assert denied.status_code == 403 and denied.json() == {"error": "deletes are off"}
    sent = json.dumps({"action": "read", "pad": "p" * 100_000}).encode()
    assert allowed.status_code == 200 and allowed.json()["len"] in (len(sent), len(sent.replace(b" ", b"")))
    events = collector.wait_for_events(2)
    assert sorted((e["response"]["status"], e["blocked_by"]) for e in events) == [(200, None), (403, "rule-body")]
    ok = next(e for e in events if e["response"]["status"] == 200)
    assert ok["request"]["body"]["action"] == "read"  # captured once, as the app read it


def test_user_rules_use_identify_user_early(
    served: Callable[..., UvicornServer], collector: Any, middlewares: List[MoesifMiddleware]
) -> None:
    collector.set_config(
        {"sample_rate": 100, "user_rules": {"heavy": [{"rules": "rule-quota", "values": {"0": "heavy"}}]}}
    )
    collector.set_rules([QUOTA_USER])
    seen: List[Any] = []

    async def identify_user(request: Any, response: Any) -> str:
        seen.append(response)
        return str(request.headers.get("x-user", "anonymous"))

    server = start(served, middlewares, IDENTIFY_USER=identify_user)
    with httpx.Client(base_url=server.url) as client:
        over = client.get("/hello", headers={"X-User": "heavy"})
        fine = client.get("/hello", headers={"X-User": "light"})
    assert over.status_code == 402
    assert over.json() == {"msg": "user heavy is over quota"} and over.headers["x-quota-user"] == "heavy"
    assert fine.status_code == 200
    assert None in seen  # called before the app, with no response yet, as the original did
    events = collector.wait_for_events(2)
    assert {(e["user_id"], e["blocked_by"]) for e in events} == {("heavy", "rule-quota"), ("light", None)}


def test_sampled_out_calls_send_nothing_but_keep_their_header(
    served: Callable[..., UvicornServer], collector: Any, middlewares: List[MoesifMiddleware]
) -> None:
    collector.set_config({"sample_rate": 0, "user_sample_rate": {"alice": 100}})
    server = start(served, middlewares)
    with httpx.Client(base_url=server.url) as client:
        for _ in range(10):
            r = client.get("/hello")
            assert UUID_RE.match(r.headers["x-moesif-transaction-id"])
        kept = client.get("/hello", headers={"Authorization": "Basic YWxpY2U6cHc="})  # alice: 100%
    for mw in middlewares:
        assert mw.flush(5)
    events: List[Dict[str, Any]] = collector.events()
    assert [(e["user_id"], e["weight"]) for e in events] == [("alice", 1)]
    assert events[0]["transaction_id"] == kept.headers["x-moesif-transaction-id"]


def test_regex_sampling_is_decided_before_the_app(
    served: Callable[..., UvicornServer], collector: Any, middlewares: List[MoesifMiddleware]
) -> None:
    collector.set_config(
        {
            "sample_rate": 100,
            "regex_config": [
                {"conditions": [{"path": "request.route", "value": "^/health"}], "sample_rate": 0},
                {"conditions": [{"path": "request.route", "value": "^/items"}], "sample_rate": 50},
            ],
        }
    )
    server = start(served, middlewares)
    with httpx.Client(base_url=server.url) as client:
        for _ in range(40):
            client.get("/health/probe")
            client.get("/items/1")
        client.get("/hello")
    for mw in middlewares:
        assert mw.flush(5)
    events = collector.events()
    paths = [e["request"]["uri"].split("/", 3)[-1] for e in events]
    assert "health/probe" not in paths
    assert paths.count("hello") == 1
    items = [e for e in events if "/items/" in e["request"]["uri"]]
    assert 0 < len(items) < 40 and {e["weight"] for e in items} == {2}
