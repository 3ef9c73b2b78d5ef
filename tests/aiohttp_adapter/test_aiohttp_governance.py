"""Governance rules and sampling from the collector (``/v1/rules``, ``/v1/config``) under a real aiohttp server:
a blocked call never reaches the handler, non-blocking rule headers reach the client, a rule on the JSON body reads
it ahead without taking it from the handler, and a call that is not sampled sends nothing."""

from __future__ import annotations

from typing import Any, Callable

import requests
from aiohttp import web
from aiohttp_support import UUID_RE, AiohttpServer

from moesif_aiohttp import MoesifMiddleware

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


def served(serve: Callable[[web.Application], AiohttpServer], mw: MoesifMiddleware) -> tuple[AiohttpServer, list[str]]:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        if request.method == "POST":
            return web.json_response(await request.json())
        return web.Response(text="hello")

    app = web.Application(middlewares=[mw])
    app.add_routes([web.get("/items/{id}", handler), web.get("/hello", handler), web.post("/act", handler)])
    mw.agent.remote.refresh_now()  # fetch the rules now rather than in the background
    return serve(app), calls


def test_blocked_calls_never_reach_the_handler_and_rule_headers_are_added(
    collector: Any, serve: Any, make_middleware: Any
) -> None:
    collector.set_rules([BLOCK_ITEMS, TAG_HELLO])
    server, calls = served(serve, make_middleware())
    blocked = requests.get(server.url + "/items/1")
    tagged = requests.get(server.url + "/hello")
    assert blocked.status_code == 429 and blocked.json() == {"error": "slow down"}
    assert blocked.headers["X-Blocked-By"] == "moesif" and blocked.headers["Content-Type"] == "application/json"
    assert UUID_RE.match(blocked.headers["X-Moesif-Transaction-Id"])
    assert tagged.status_code == 200 and tagged.text == "hello" and tagged.headers["X-Plan"] == "free"
    assert calls == ["/hello"]
    events = {e["request"]["uri"].rsplit("/", 1)[-1]: e for e in collector.wait_for_events(2)}
    assert events["1"]["blocked_by"] == "rule-items" and events["1"]["response"]["status"] == 429
    assert events["1"]["response"]["body"] == {"error": "slow down"}
    assert events["1"]["transaction_id"] == blocked.headers["X-Moesif-Transaction-Id"]
    assert events["hello"]["blocked_by"] is None and events["hello"]["response"]["headers"]["X-Plan"] == "free"


def test_a_rule_on_the_json_body_reads_it_ahead_and_the_handler_still_gets_it(
    collector: Any, serve: Any, make_middleware: Any
) -> None:
    collector.set_rules([BLOCK_DELETE_BODY])
    server, calls = served(serve, make_middleware())
    denied = requests.post(server.url + "/act", json={"action": "delete"})
    allowed = requests.post(server.url + "/act", json={"action": "read"})
    assert denied.status_code == 403 and denied.json() == {"error": "deletes are off"}
    assert allowed.status_code == 200 and allowed.json() == {"action": "read"}
    assert calls == ["/act"]
    events = collector.wait_for_events(2)
    assert sorted(e["request"]["body"]["action"] for e in events) == ["delete", "read"]


def test_calls_not_sampled_send_nothing(collector: Any, serve: Any, make_middleware: Any) -> None:
    collector.set_config(
        {
            "sample_rate": 100,
            "regex_config": [{"conditions": [{"path": "request.route", "value": "^/items/"}], "sample_rate": 0}],
        }
    )
    server, _ = served(serve, make_middleware())
    dropped = requests.get(server.url + "/items/9")
    kept = requests.get(server.url + "/hello")
    assert dropped.status_code == 200 and UUID_RE.match(dropped.headers["X-Moesif-Transaction-Id"])
    (event,) = collector.wait_for_events(1)
    assert event["request"]["uri"].endswith("/hello") and kept.status_code == 200
    assert collector.count_events() == 1
