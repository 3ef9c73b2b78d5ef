"""The JSON behind the page's views: routes, traffic over time, users and companies, config, paging, filters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest

from moesif_collector import Collector
from moesif_collector.routes import route_template
from moesif_collector.timefmt import format_time

UUID = "9b2c6f0e-4d1a-4c8e-8f3b-2a7d5e6c1b90"
HEX = "5f8d0d55b54764421b7156c3"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _event(
    make_event: Any,
    i: int,
    path: str,
    status: int = 200,
    *,
    minutes_ago: float = 1.0,
    duration_ms: int = 10,
    user: Any = None,
    company: Any = None,
    verb: str = "GET",
) -> Any:
    event = make_event(i, user_id=user, company_id=company)
    started = _now() - timedelta(minutes=minutes_ago)
    event["request"]["uri"] = f"http://localhost{path}?q=1"
    event["request"]["verb"] = verb
    event["request"]["time"] = format_time(started)
    event["response"]["time"] = format_time(started + timedelta(milliseconds=duration_ms))
    event["response"]["status"] = status
    return event


def _get(client: Any, path: str) -> Any:
    reply = client.get(path, app_id=None)
    assert reply.status == 200, reply
    return reply.json()


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/items/42", "/items/{id}"),
        (f"/users/{UUID}/orders/7", "/users/{id}/orders/{id}"),
        (f"/users/{UUID.replace('-', '').upper()}", "/users/{id}"),
        (f"/objects/{HEX}", "/objects/{id}"),
        ("/items/new", "/items/new"),
        ("/users/me", "/users/me"),
        ("/cafe/beef", "/cafe/beef"),  # short hex-looking words stay
        ("/v1/items/", "/v1/items/"),
        ("/a/deadbeefdeadbeefdeadbeef", "/a/deadbeefdeadbeefdeadbeef"),  # long, but no digit: a word
        ("/", "/"),
    ],
)
def test_route_templates(path: str, template: str) -> None:
    assert route_template(path) == template


def test_routes_group_by_template_with_percentiles(client: Any, make_event: Any) -> None:
    events = [_event(make_event, i, f"/items/{i}", duration_ms=i + 1) for i in range(20)]  # 1..20 ms
    events += [_event(make_event, 30, f"/items/{UUID}", 500, duration_ms=100)]
    events += [_event(make_event, 31, f"/items/{HEX}", 404, duration_ms=200, verb="DELETE")]
    events += [_event(make_event, 32, "/items/new", duration_ms=5, verb="POST")]
    assert client.post("/v1/events/batch", events).status == 201

    routes = _get(client, "/api/routes")["routes"]
    assert [(r["verb"], r["route"], r["calls"], r["errors"]) for r in routes] == [
        ("GET", "/items/{id}", 21, 1),
        ("POST", "/items/new", 1, 0),  # ties: alphabetical
        ("DELETE", "/items/{id}", 1, 1),
    ]
    items = routes[0]
    # Nearest rank over 1..20 and 100 ms (21 values): p50 is the 11th, p95 the 20th.
    assert (items["p50_ms"], items["p95_ms"]) == (11.0, 20.0)
    assert items["error_rate"] == pytest.approx(1 / 21)
    assert [r["route"] for r in _get(client, "/api/routes?sort=p95")["routes"]] == [
        "/items/{id}",  # DELETE, 200 ms
        "/items/{id}",
        "/items/new",
    ]
    assert _get(client, "/api/routes?sort=p95")["routes"][0]["verb"] == "DELETE"
    assert [r["route"] for r in _get(client, "/api/routes?sort=calls&dir=asc")["routes"]][-1] == "/items/{id}"
    assert client.get("/api/routes?sort=nope", app_id=None).status == 400
    # A substring filter is answered another way (one pass, grouped in Python): the same numbers.
    assert _get(client, "/api/routes?path=items")["routes"] == routes
    by_path = _get(client, "/api/stats?path=items&routes=0")
    assert (by_path["calls"], by_path["calls_last_minute"], by_path["p95_ms"]) == (23, 23, 100.0)

    # A route (verb + template) filters the calls, the totals and the chart exactly.
    query = "route=" + quote("/items/{id}") + "&verb=GET"
    calls = _get(client, f"/api/calls?{query}")["calls"]
    assert len(calls) == 21 and {c["route"] for c in calls} == {"/items/{id}"}
    assert _get(client, f"/api/stats?{query}")["calls"] == 21
    assert _get(client, f"/api/timeseries?{query}")["calls"] == 21
    # The totals carry the busiest routes too (for the stats command), templated the same way.
    assert _get(client, "/api/stats")["routes"][0]["route"] == "/items/{id}"
    assert _get(client, "/api/stats?routes=0")["routes"] == []


def test_timeseries_buckets(client: Any, make_event: Any) -> None:
    events = [
        _event(make_event, 0, "/a", 200, minutes_ago=3, duration_ms=10),
        _event(make_event, 1, "/a", 404, minutes_ago=3, duration_ms=30),
        _event(make_event, 2, "/a", 503, minutes_ago=3, duration_ms=50),
        _event(make_event, 3, "/b", 200, minutes_ago=40, duration_ms=5),
        _event(make_event, 4, "/b", 200, minutes_ago=120, duration_ms=5),  # outside the last hour
    ]
    assert client.post("/v1/events/batch", events).status == 201

    hour = _get(client, "/api/timeseries")  # the last hour by default
    assert hour["window"] == "1h" and hour["step_seconds"] == 60 and len(hour["buckets"]) == 60
    assert hour["calls"] == 4
    busy = [b for b in hour["buckets"] if b["calls"]]
    assert [b["calls"] for b in busy] == [1, 3]  # oldest first
    recent = busy[-1]
    assert (recent["s4xx"], recent["s5xx"], recent["calls_per_minute"], recent["p95_ms"]) == (1, 1, 3.0, 50.0)
    starts = [b["start"] for b in hour["buckets"]]
    assert starts == sorted(starts) and starts[0] == hour["start"]
    assert hour["start"] <= format_time(_now() - timedelta(minutes=59)) <= hour["end"]

    assert _get(client, "/api/timeseries?window=6h")["calls"] == 5
    quarter = _get(client, "/api/timeseries?window=15m")
    assert len(quarter["buckets"]) == 60 and quarter["calls"] == 3
    assert max(b["calls_per_minute"] for b in quarter["buckets"]) == 12.0  # 3 calls in a 15 s bucket
    assert _get(client, "/api/timeseries?window=24h&status=5xx")["calls"] == 1
    by_path = _get(client, "/api/timeseries?path=a")  # a substring filter: one pass, bucketed in Python
    assert [b for b in by_path["buckets"] if b["calls"]] == [recent]
    # Time filters are the calls table's; the chart keeps its own window.
    since = quote(format_time(_now() - timedelta(minutes=10)))
    assert _get(client, f"/api/timeseries?from={since}")["calls"] == 4
    assert client.get("/api/timeseries?window=2d", app_id=None).status == 400


def test_time_range_and_paging(client: Any, make_event: Any) -> None:
    events = [_event(make_event, i, f"/p/{i}", minutes_ago=250 - i) for i in range(250)]  # one a minute
    assert client.post("/v1/events/batch", events).status == 201

    first = _get(client, "/api/calls")
    assert len(first["calls"]) == 100 and first["more"] is True
    assert first["calls"][0]["path"] == "/p/249"
    second = _get(client, f"/api/calls?before_id={first['calls'][-1]['id']}")
    assert second["calls"][0]["path"] == "/p/149" and second["more"] is True
    third = _get(client, f"/api/calls?before_id={second['calls'][-1]['id']}")
    assert len(third["calls"]) == 50 and third["calls"][-1]["path"] == "/p/0" and third["more"] is False

    since = _now() - timedelta(minutes=30, seconds=30)
    until = _now() - timedelta(minutes=10, seconds=30)
    # Any ISO-8601 form: here with an offset, which is converted to UTC.
    to_text = (until + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S") + "+02:00"
    window = _get(client, f"/api/calls?from={quote(format_time(since))}&to={quote(to_text)}")["calls"]
    assert [c["path"] for c in window] == [f"/p/{i}" for i in range(239, 219, -1)]
    assert _get(client, f"/api/stats?from={quote(format_time(since))}")["calls"] == 30
    bad = client.get("/api/calls?from=yesterday", app_id=None)
    assert bad.status == 400 and "from must be an ISO-8601 time" in bad.json()["message"]


def test_users_and_companies(client: Any, make_event: Any) -> None:
    profiles = [
        {"user_id": "alice", "company_id": "acme", "metadata": {"email": "alice@example.com", "plan": "pro"}},
        {"user_id": "alice2", "company_id": "acme"},
        {"user_id": "bob", "metadata": {"email": "bob@example.com"}},
    ]
    assert client.post("/v1/users/batch", profiles).status == 201
    assert client.post("/v1/companies", {"company_id": "acme", "metadata": {"industry": "anvils"}}).status == 201
    subscription = {"subscription_id": "sub-1", "company_id": "acme", "status": "active", "metadata": {"plan": "gold"}}
    assert client.post("/v1/subscriptions", subscription).status == 201
    events = [
        _event(make_event, 0, "/a", 200, minutes_ago=30, user="alice", company="acme"),
        _event(make_event, 1, "/a", 500, minutes_ago=20, user="alice", company="acme"),
        _event(make_event, 2, "/a", 200, minutes_ago=10, user="alice2", company="acme"),
        _event(make_event, 3, "/b", 404, minutes_ago=5, user="carol"),  # no profile, still a user
    ]
    assert client.post("/v1/events/batch", events).status == 201

    found = _get(client, "/api/users")
    assert found["total"] == 4
    users = {u["id"]: u for u in found["users"]}
    assert [u["id"] for u in found["users"]] == ["carol", "alice2", "alice", "bob"]  # last seen first, unseen last
    alice = users["alice"]
    assert alice["profile"]["metadata"] == {"email": "alice@example.com", "plan": "pro"}
    assert (alice["calls"], alice["errors"]) == (2, 1)
    assert alice["first_seen"] < alice["last_seen"] and alice["profile_received_at"]
    assert users["carol"]["profile"] is None and users["carol"]["calls"] == 1
    assert users["bob"]["calls"] == 0 and users["bob"]["last_seen"] is None
    assert [u["id"] for u in _get(client, "/api/users?sort=id&dir=asc")["users"]] == ["alice", "alice2", "bob", "carol"]
    assert [u["id"] for u in _get(client, "/api/users?limit=2&offset=2")["users"]] == ["alice", "bob"]

    # A click on a user selects exactly that user; typing matches a part of the id.
    assert {c["user_id"] for c in _get(client, "/api/calls?user_id=alice")["calls"]} == {"alice"}
    assert {c["user_id"] for c in _get(client, "/api/calls?user=alice")["calls"]} == {"alice", "alice2"}
    # With call filters, only those with matching calls are listed, counted over the matching calls.
    errors_only = _get(client, "/api/users?status=5xx")
    assert [(u["id"], u["calls"]) for u in errors_only["users"]] == [("alice", 1)] and errors_only["total"] == 1
    assert [u["id"] for u in _get(client, "/api/users?path=b")["users"]] == ["carol"]
    alice_routes = _get(client, "/api/routes?user_id=alice")["routes"]
    assert [(r["route"], r["calls"], r["errors"]) for r in alice_routes] == [("/a", 2, 1)]

    companies = _get(client, "/api/companies")["companies"]
    assert [c["id"] for c in companies] == ["acme"]
    acme = companies[0]
    assert acme["profile"]["metadata"] == {"industry": "anvils"} and (acme["calls"], acme["errors"]) == (3, 1)
    assert acme["users"] == 2 and acme["subscriptions"] == [subscription]
    assert {c["company_id"] for c in _get(client, "/api/calls?company_id=acme")["calls"]} == {"acme"}
    assert len(_get(client, "/api/calls?company=cm")["calls"]) == 3
    assert client.get("/api/users?sort=nope", app_id=None).status == 400


def test_config_in_effect(collector: Collector, client: Any) -> None:
    collector.set_config({"sample_rate": 50, "user_sample_rate": {"alice": 10}})
    collector.set_rules([{"_id": "r1", "type": "user", "block": True}])
    shown = _get(client, "/api/config")
    assert shown["config"]["value"] == {"sample_rate": 50, "user_sample_rate": {"alice": 10}}
    assert shown["config"]["path"].endswith("collector.config.json") and shown["config"]["error"] is None
    assert shown["rules"]["value"] == [{"_id": "r1", "type": "user", "block": True}]
    assert shown["rules"]["path"].endswith("collector.rules.json")
    assert shown["config_etag"] == collector.config_etag
    # A broken edit keeps the last valid content served, and the page says why.
    with open(shown["config"]["path"], "w") as handle:
        handle.write("{not json")
    broken = _get(client, "/api/config")["config"]
    assert broken["value"] == {"sample_rate": 50, "user_sample_rate": {"alice": 10}} and "not valid" in broken["error"]


def test_last_minute_under_a_filter_after_a_bulk_load(client: Any, make_event: Any) -> None:
    # Over 2,000 calls received in the last minute: the filtered count takes the other way (one index pass).
    events = [_event(make_event, i, "/a" if i % 2 else "/b", minutes_ago=90) for i in range(2100)]
    assert client.post("/v1/events/batch", events).status == 201
    stats = _get(client, "/api/stats?routes=0&route=/b&verb=GET")
    assert (stats["calls"], stats["calls_last_minute"]) == (1050, 1050)
    assert _get(client, "/api/stats?routes=0")["calls_last_minute"] == 2100
