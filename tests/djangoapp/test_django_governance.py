"""Sampling and governance from the collector's app config and rules (``/v1/config``, ``/v1/rules``), end to end
under real servers: a blocked request gets the rule's response and never reaches the view (and is recorded with
``blocked_by``), non-blocking rules' headers reach the client, user rules use the cohort's values, and requests that
are not sampled send nothing while their responses stay the same. Sync views under WSGI, async views under ASGI
(the middleware on the event loop), and the pre-1.10 class."""

from __future__ import annotations

import uuid
from typing import Any

import djt_views
import pytest
import requests
from djt_support import UUID_RE, header, options, path_of, serve, wait_for_path

from moesifdjango.config import agent_for

BLOCK = {
    "_id": "rule-block",
    "type": "regex",
    "name": "block",
    "block": True,
    "applied_to": "matching",
    "applied_to_unidentified": True,
    "regex_config": [{"conditions": [{"path": "request.route", "value": "/gov/blocked-"}]}],
    "response": {"status": 429, "headers": {"X-Blocked-By": "moesif"}, "body": {"error": "slow down"}},
}
TAG = {
    "_id": "rule-tag",
    "type": "regex",
    "name": "tag",
    "block": False,
    "applied_to": "matching",
    "applied_to_unidentified": True,
    "regex_config": [{"conditions": [{"path": "request.route", "value": "/gov/tagged-"}]}],
    "response": {"status": 200, "headers": {"X-Plan": "free"}, "body": None},
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

#: (server, URL prefix of the counting view): a sync view under WSGI, an async view under ASGI (our middleware on
#: the event loop), and the pre-1.10 class through decorator_from_middleware.
SETUPS = [("wsgi", "/gov"), ("asgi", "/async/gov"), ("wsgi", "/pre19/gov")]
IDS = ["wsgi-sync", "asgi-async", "pre19"]


def in_force(opts: dict[str, Any]) -> None:
    """Fetch the collector's config and rules now, so they apply from the first request."""
    _, agent = agent_for(opts)
    agent.start()
    agent.remote.refresh_now()


def flush(opts: dict[str, Any]) -> None:
    _, agent = agent_for(opts)
    assert agent.flush(5)


@pytest.mark.parametrize(("kind", "prefix"), SETUPS, ids=IDS)
def test_blocking_rule_answers_without_the_view(kind: str, prefix: str, collector: Any) -> None:
    collector.set_rules([BLOCK, TAG])
    opts = options(collector)
    blocked_name, tagged_name = f"blocked-{uuid.uuid4().hex}", f"tagged-{uuid.uuid4().hex}"
    with serve(kind, opts) as url:
        in_force(opts)
        blocked = requests.get(f"{url}{prefix}/{blocked_name}", timeout=10)
        tagged = requests.get(f"{url}{prefix}/{tagged_name}", timeout=10)
        b_event = wait_for_path(collector, f"{prefix}/{blocked_name}")[0]
        t_event = wait_for_path(collector, f"{prefix}/{tagged_name}")[0]
    assert blocked.status_code == 429
    assert blocked.json() == {"error": "slow down"}
    assert blocked.headers["x-blocked-by"] == "moesif"
    assert blocked.headers["content-type"] == "application/json"
    assert UUID_RE.match(blocked.headers["x-moesif-transaction-id"])
    assert djt_views.CALLS.get(blocked_name, 0) == 0  # the view never ran
    assert b_event["blocked_by"] == "rule-block"
    assert b_event["response"]["status"] == 429
    assert b_event["response"]["body"] == {"error": "slow down"}
    assert header(b_event["response"]["headers"], "X-Blocked-By") == "moesif"
    assert b_event["transaction_id"] == blocked.headers["x-moesif-transaction-id"]

    assert tagged.status_code == 200 and tagged.json() == {"counted": tagged_name}
    assert tagged.headers["x-plan"] == "free"
    assert djt_views.CALLS[tagged_name] == 1
    assert t_event["blocked_by"] is None
    assert header(t_event["response"]["headers"], "X-Plan") == "free"


@pytest.mark.parametrize(("kind", "prefix"), SETUPS, ids=IDS)
def test_user_rule_with_cohort_values(kind: str, prefix: str, collector: Any) -> None:
    collector.set_config(
        {"sample_rate": 100, "user_rules": {"heavy": [{"rules": "rule-quota", "values": {"0": "heavy"}}]}}
    )
    collector.set_rules([QUOTA_USER])
    seen: list[Any] = []

    def identify_user(request: Any, response: Any) -> Any:
        seen.append(response)
        return request.META.get("HTTP_X_USER")

    opts = options(collector, IDENTIFY_USER=identify_user)
    name = f"quota-{uuid.uuid4().hex}"
    with serve(kind, opts) as url:
        in_force(opts)
        over = requests.get(f"{url}{prefix}/{name}", headers={"X-User": "heavy"}, timeout=10)
        fine = requests.get(f"{url}{prefix}/{name}", headers={"X-User": "light"}, timeout=10)
        events = wait_for_path(collector, f"{prefix}/{name}", 2)
    assert over.status_code == 402
    assert over.json() == {"msg": "user heavy is over quota"}
    assert over.headers["x-quota-user"] == "heavy"
    assert fine.status_code == 200 and fine.json() == {"counted": name}
    assert djt_views.CALLS[name] == 1  # only the light user's call reached the view
    assert None in seen  # called before the view, with no response yet
    assert {(e["user_id"], e["blocked_by"]) for e in events} == {("heavy", "rule-quota"), ("light", None)}


def test_user_rule_sees_the_authorization_header_user(collector: Any) -> None:
    """No IDENTIFY_USER and no logged-in user: the Basic/JWT user from the Authorization header is the user."""
    collector.set_config({"user_rules": {"alice": [{"rules": "rule-quota", "values": {"0": "alice"}}]}})
    collector.set_rules([QUOTA_USER])
    opts = options(collector)
    name = f"auth-{uuid.uuid4().hex}"
    with serve("asgi", opts) as url:
        in_force(opts)
        r = requests.get(f"{url}/async/gov/{name}", auth=("alice", "pw"), timeout=10)
        event = wait_for_path(collector, f"/async/gov/{name}")[0]
    assert r.status_code == 402 and r.headers["x-quota-user"] == "alice"
    assert djt_views.CALLS.get(name, 0) == 0
    assert event["blocked_by"] == "rule-quota" and event["user_id"] == "alice"


@pytest.mark.parametrize(("kind", "prefix"), SETUPS, ids=IDS)
def test_sample_rate_zero_sends_nothing_and_changes_no_response(kind: str, prefix: str, collector: Any) -> None:
    # everything at 0 % except /text, which shows that events still flow
    collector.set_config(
        {
            "sample_rate": 0,
            "regex_config": [{"conditions": [{"path": "request.route", "value": "^/text$"}], "sample_rate": 100}],
        }
    )
    opts = options(collector)
    name = f"zero-{uuid.uuid4().hex}"
    with serve(kind, opts) as url:
        in_force(opts)
        for _ in range(10):  # no keep-alive: Django's test WSGI server answers reused connections slowly
            r = requests.get(f"{url}{prefix}/{name}", timeout=10)
            assert r.status_code == 200 and r.json() == {"counted": name}
            assert UUID_RE.match(r.headers["x-moesif-transaction-id"])
        kept = requests.get(f"{url}/text", timeout=10)
        flush(opts)
        events = wait_for_path(collector, "/text")
    assert djt_views.CALLS[name] == 10
    assert [path_of(e) for e in collector.events()] == ["/text"]
    assert events[0]["weight"] == 1
    assert events[0]["transaction_id"] == kept.headers["x-moesif-transaction-id"]


@pytest.mark.parametrize(("kind", "prefix"), SETUPS[:2], ids=IDS[:2])
def test_half_sampling_sends_about_half_with_weight_two(kind: str, prefix: str, collector: Any) -> None:
    collector.set_config({"sample_rate": 50})
    opts = options(collector)
    name = f"half-{uuid.uuid4().hex}"
    n = 60
    with serve(kind, opts) as url:
        in_force(opts)
        for _ in range(n):
            assert requests.get(f"{url}{prefix}/{name}", timeout=10).status_code == 200
        flush(opts)
    events = collector.events()
    assert djt_views.CALLS[name] == n
    assert 10 <= len(events) <= 50, len(events)  # P(outside) < 1e-6 at 50 %
    assert {e["weight"] for e in events} == {2}
    assert {path_of(e) for e in events} == {f"{prefix}/{name}"}


def test_user_rule_sees_the_logged_in_user(collector: Any) -> None:
    """No IDENTIFY_USER: a logged-in user (resolved from the session before the view, in sync mode) is the user."""
    collector.set_config({"user_rules": {"alice": [{"rules": "rule-quota", "values": {"0": "alice"}}]}})
    collector.set_rules([QUOTA_USER])
    opts = options(collector)
    name = f"session-{uuid.uuid4().hex}"
    with serve("wsgi", opts) as url:
        with requests.Session() as s:
            assert (
                s.post(f"{url}/login", data={"username": "alice", "password": "wonderland"}, timeout=10).status_code
                == 200
            )
            in_force(opts)
            r = s.get(f"{url}/gov/{name}", timeout=10)
        event = wait_for_path(collector, f"/gov/{name}")[0]
    assert r.status_code == 402 and r.json() == {"msg": "user alice is over quota"}
    assert djt_views.CALLS.get(name, 0) == 0
    assert event["blocked_by"] == "rule-quota" and event["user_id"] == "alice"
