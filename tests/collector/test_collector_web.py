"""The page's JSON endpoints and the server-rendered HTML (escaping, security headers)."""

from __future__ import annotations

import base64
from html import escape
from typing import Any
from urllib.parse import quote

from moesif_collector import Collector

XSS = '<img src=x onerror="window.__xss=1">'


def _event(make_event: Any, i: int, path: str, status: int, user: Any = None, duration_ms: int = 10) -> Any:
    event = make_event(i, user_id=user)
    event["request"]["uri"] = f"http://localhost{path}?q=1"
    event["request"]["verb"] = "GET"
    event["request"]["time"] = "2026-11-25T23:01:46.000"
    event["response"]["time"] = f"2026-11-25T23:01:46.{duration_ms:03d}"
    event["response"]["status"] = status
    return event


def test_calls_filters_and_order(collector: Collector, client: Any, make_event: Any) -> None:
    events = [
        _event(make_event, 0, "/orders/1", 200, "alice"),
        _event(make_event, 1, "/orders/2", 404, "bob"),
        _event(make_event, 2, "/health", 200, None),
        _event(make_event, 3, "/orders/3", 503, "alice"),
    ]
    assert client.post("/v1/events/batch", events).status == 201

    def paths(query: str) -> list[str]:
        reply = client.get("/api/calls" + query, app_id=None)
        assert reply.status == 200, reply
        return [c["path"] for c in reply.json()["calls"]]

    assert paths("") == ["/orders/3", "/health", "/orders/2", "/orders/1"]  # newest first
    assert paths("?path=ORDERS") == ["/orders/3", "/orders/2", "/orders/1"]
    assert paths("?status=4xx") == ["/orders/2"]
    assert paths("?status=2xx&path=orders") == ["/orders/1"]
    assert paths("?user=ali") == ["/orders/3", "/orders/1"]
    assert paths("?path=%25") == []  # LIKE wildcards are matched literally
    assert paths("?limit=2") == ["/orders/3", "/health"]
    first_id = client.get("/api/calls?order=asc&limit=1", app_id=None).json()["calls"][0]["id"]
    assert paths(f"?after_id={first_id}&order=asc") == ["/orders/2", "/health", "/orders/3"]
    assert client.get("/api/calls?status=9xx", app_id=None).status == 400


def test_stats(collector: Collector, client: Any, make_event: Any) -> None:
    events = [
        _event(make_event, i, "/a" if i < 15 else "/b", 500 if i % 5 == 0 else 200, duration_ms=i + 1)
        for i in range(20)
    ]
    client.post("/v1/events/batch", events)
    stats = client.get("/api/stats", app_id=None).json()
    assert stats["calls"] == 20 and stats["errors"] == 4 and stats["error_rate"] == 0.2
    assert stats["p50_ms"] == 10.0 and stats["p95_ms"] == 19.0  # nearest rank over 1..20 ms
    assert stats["calls_last_minute"] == 20 and stats["calls_per_minute"] == 20.0
    assert [(r["path"], r["calls"], r["errors"]) for r in stats["routes"]] == [("/a", 15, 3), ("/b", 5, 1)]
    assert stats["routes"][1]["avg_ms"] == 18.0
    filtered = client.get("/api/stats?path=/b", app_id=None).json()
    assert filtered["calls"] == 5
    empty = client.get("/api/stats?user=nobody", app_id=None).json()
    assert empty["calls"] == 0 and empty["p50_ms"] is None and empty["routes"] == []


def test_call_detail_decodes_bodies(collector: Collector, client: Any, make_event: Any) -> None:
    text_event = make_event(0)
    text_event["request"]["body"] = base64.b64encode("name=Zoë&qty=2".encode()).decode()
    text_event["request"]["transfer_encoding"] = "base64"
    text_event["response"]["body"] = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00binary").decode()
    text_event["response"]["transfer_encoding"] = "base64"
    json_event = make_event(1)
    json_event["request"]["body"] = {"password": "x", "n": [1, 2]}
    json_event["request"]["transfer_encoding"] = "json"
    json_event["response"]["body"] = None
    json_event["response"]["transfer_encoding"] = None
    client.post("/v1/events/batch", [text_event, json_event])
    ids = sorted(c["id"] for c in collector.calls())

    detail = client.get(f"/api/calls/{ids[0]}", app_id=None).json()
    assert detail["event"] == text_event
    assert detail["request"]["body"]["kind"] == "text" and detail["request"]["body"]["text"] == "name=Zoë&qty=2"
    assert detail["response"]["body"]["kind"] == "base64"
    assert detail["response"]["body"]["text"] == text_event["response"]["body"]
    assert "binary" in detail["response"]["body"]["note"]
    assert detail["request"]["headers"]["Host"] == "api.example.com"

    detail = client.get(f"/api/calls/{ids[1]}", app_id=None).json()
    assert detail["request"]["body"]["kind"] == "json" and '"password": "x"' in detail["request"]["body"]["text"]
    assert detail["response"]["body"]["kind"] == "none"
    assert client.get("/api/calls/999999", app_id=None).status == 404
    assert client.get("/api/calls/abc", app_id=None).status == 404


def test_page_is_escaped_and_locked_down(collector: Collector, client: Any, make_event: Any) -> None:
    event = _event(make_event, 0, "/x/" + XSS, 200, user='"><script>window.__xss=1</script>')
    client.post("/v1/events/batch", [event])
    page = client.get("/?path=" + "%3Cb%3E", app_id=None)
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    html = page.body.decode()
    assert 'value="&lt;b&gt;"' in html  # the filter value is echoed escaped
    full = client.get("/", app_id=None).body.decode()
    assert "<script>window" not in full and "<img src=x" not in full
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in full
    assert 'id="calls-body"' in full and 'class="call-row s2xx"' in full
    assert "<script>" not in full  # no inline script at all: only <script src=...>
    assert "style=" not in full and "'unsafe-inline'" not in csp  # no inline style either
    # The routes view and the chips of exact filters are escaped as well.
    routes = client.get("/?view=routes", app_id=None).body.decode()
    assert XSS not in routes and f'data-route="/x/{escape(XSS)}"' in routes
    chips = client.get("/?route=" + quote(XSS) + "&user_id=" + quote('"><b>'), app_id=None).body.decode()
    assert XSS not in chips and "<b>" not in chips
    assert '<span class="chip" data-param="user_id">' in chips and "&quot;&gt;&lt;b&gt;" in chips
    # No outside resources: every src/href is local.
    for marker in ('src="http', 'href="http', "//cdn"):
        assert marker not in full
    for asset in ("/static/app.js", "/static/style.css"):
        reply = client.get(asset, app_id=None)
        assert reply.status == 200 and reply.body
    script = client.get("/static/app.js", app_id=None).body
    assert b"innerHTML" not in script and b"outerHTML" not in script and b"insertAdjacentHTML" not in script
    assert client.get("/nope", app_id=None).status == 404
    assert client.request("POST", "/api/stats", b"{}").status == 405
