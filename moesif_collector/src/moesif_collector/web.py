"""The live web page (``GET /``) and the JSON endpoints it polls (``/api/...``).

The page is rendered on the server (``page.py``: the calls, totals and routes show even without
JavaScript), then ``app.js`` polls the JSON below and rebuilds its views with DOM text nodes only. Event
data is untrusted (it is whatever clients sent), so: the HTML is escaped on the server, the script never
uses ``innerHTML``, and a strict Content-Security-Policy forbids inline script, inline style and every
outside resource.

JSON endpoints (every one takes the call filters of :func:`filter_from`):

- ``GET /api/calls?limit=100&after_id=&before_id=&order=desc|asc``: call summaries, ``more`` when the
  page did not hold them all.
- ``GET /api/calls/<id>``: one event in full, with bodies decoded for display (see :func:`describe_body`).
- ``GET /api/stats?routes=50``: totals and the busiest routes (see ``Storage.stats``).
- ``GET /api/routes?sort=calls&dir=desc``: per route template (see ``analytics.route_stats``).
- ``GET /api/timeseries?window=15m|1h|6h|24h``: traffic per bucket (see ``analytics.timeseries``).
- ``GET /api/users``, ``GET /api/companies`` (``sort``, ``dir``, ``limit``, ``offset``): profiles and activity.
- ``GET /api/config``: the config and governance rules being served, and the files they come from.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection
from dataclasses import replace
from importlib import resources
from typing import Any

from .analytics import PEOPLE_SORTS, ROUTE_SORTS, WINDOWS
from .app import CollectorApp
from .config_store import JsonFileStore
from .http_types import Request, Response, error_response, json_response
from .page import render_page
from .storage import STATUS_CLASSES, CallFilter
from .text import has_control
from .timefmt import format_time, parse_time

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self';"
        " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_STATIC_TYPES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

MAX_LIMIT = 1000


def _static(name: str) -> bytes:
    return resources.files("moesif_collector").joinpath("static", name).read_bytes()


def handle(app: CollectorApp, req: Request) -> Response:
    """Answer one request for the page, its assets or its JSON."""
    if req.method not in ("GET", "HEAD"):
        return error_response(405, "the web views are read-only", {"Allow": "GET, HEAD"})
    path = req.path
    if path == "/":
        try:
            flt = filter_from(req)
        except ValueError:  # a hand-edited URL: show everything rather than an error page
            flt = CallFilter()
        page = render_page(app, req, replace(flt, after_id=0)).encode("utf-8")
        return _with_security(Response(200, page, {"Content-Type": "text/html; charset=utf-8"}))
    if path.startswith("/static/") and path[len("/static/") :] in _STATIC_TYPES:
        name = path[len("/static/") :]
        return _with_security(Response(200, _static(name), {"Content-Type": _STATIC_TYPES[name]}))
    if path == "/favicon.ico":
        return Response(204)
    try:
        if path == "/api/calls":
            flt = filter_from(req)
            limit = _int_param(req, "limit", 100, 1, MAX_LIMIT)
            newest_first = req.param("order", "desc") != "asc"
            calls = app.storage.calls(flt, limit=limit + 1, newest_first=newest_first)
            return _with_security(json_response(200, {"calls": calls[:limit], "more": len(calls) > limit}))
        if path.startswith("/api/calls/"):
            event_id = parse_id(path[len("/api/calls/") :])
            if event_id is None:
                return error_response(404, "no such call")
            detail = app.storage.call(event_id)
            if detail is None:
                return error_response(404, f"no call with id {event_id}")
            return _with_security(json_response(200, describe_call(detail)))
        if path == "/api/stats":
            routes_limit = _int_param(req, "routes", 50, 0, MAX_LIMIT)
            stats = app.storage.stats(filter_from(req), routes_limit=routes_limit)
            return _with_security(json_response(200, stats))
        if path == "/api/routes":
            sort, descending = _sort_params(req, ROUTE_SORTS, "calls")
            limit = _int_param(req, "limit", 200, 1, MAX_LIMIT)
            routes = app.storage.routes(filter_from(req), limit=limit, sort=sort, descending=descending)
            return _with_security(json_response(200, {"routes": routes}))
        if path == "/api/timeseries":
            window = req.param("window", "1h")
            if window not in WINDOWS:
                raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
            return _with_security(json_response(200, app.storage.timeseries(filter_from(req), window)))
        if path in ("/api/users", "/api/companies"):
            sort, descending = _sort_params(req, PEOPLE_SORTS, "last_seen")
            found = app.storage.people(
                path[len("/api/") :],
                filter_from(req),
                limit=_int_param(req, "limit", 100, 1, MAX_LIMIT),
                offset=_int_param(req, "offset", 0, 0, 2**31),
                sort=sort,
                descending=descending,
            )
            return _with_security(json_response(200, found))
        if path == "/api/config":
            return _with_security(json_response(200, config_in_effect(app)))
    except ValueError as exc:
        return error_response(400, str(exc))
    return error_response(404, f"no such page: {req.path}")


_ID = re.compile(r"[0-9]{1,19}")


def parse_id(text: str) -> int | None:
    """An event id from a URL: ASCII digits within SQLite's 64-bit range, else ``None`` (a 404, never a 500)."""
    if not _ID.fullmatch(text):
        return None
    value = int(text)
    return value if value < 2**63 else None


def _with_security(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _int_param(req: Request, name: str, default: int, low: int, high: int) -> int:
    text = req.param(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    return max(low, min(high, value))


def _sort_params(req: Request, allowed: Collection[str], default: str) -> tuple[str, bool]:
    sort = req.param("sort", default) or default
    if sort not in allowed:
        raise ValueError(f"sort must be one of {', '.join(allowed)}")
    direction = req.param("dir", "desc")
    if direction not in ("asc", "desc"):
        raise ValueError("dir must be asc or desc")
    return sort, direction == "desc"


def _time_param(req: Request, name: str) -> str:
    """A time bound in the stored form; accepts any ISO-8601 time (``Z`` or an offset: converted to UTC)."""
    text = req.param(name).strip()
    if not text:
        return ""
    parsed = parse_time(text)
    if parsed is None:
        raise ValueError(f"{name} must be an ISO-8601 time such as 2026-12-02T06:00:00Z, not {text!r}")
    return format_time(parsed)


def filter_from(req: Request) -> CallFilter:
    """Read the call filters from query parameters, shared by every view so they agree on what they count.

    ``path``, ``user``, ``company``: contains (what people type); ``user_id``, ``company_id``, ``verb``,
    ``route``: exact (what a click selects); ``status``: a class like ``4xx``; ``from``/``to``: request
    time range (ISO-8601, ``to`` excluded); ``after_id``/``before_id``: id bounds for following and paging.
    """
    status = req.param("status").strip().lower()
    if status and status not in STATUS_CLASSES:
        raise ValueError(f"status must be one of {', '.join(STATUS_CLASSES)}")
    return CallFilter(
        path=req.param("path").strip(),
        status=status,
        user=req.param("user").strip(),
        company=req.param("company").strip(),
        user_id=req.param("user_id"),
        company_id=req.param("company_id"),
        verb=req.param("verb").strip().upper(),
        route=req.param("route"),
        since=_time_param(req, "from"),
        until=_time_param(req, "to"),
        after_id=_int_param(req, "after_id", 0, 0, 2**62),
        before_id=_int_param(req, "before_id", 0, 0, 2**62),
    )


def _file_view(store: JsonFileStore) -> dict[str, Any]:
    snapshot = store.snapshot_or_none()
    return {
        "path": str(store.path.resolve()),
        "value": None if snapshot is None else snapshot.value,
        "etag": None if snapshot is None else snapshot.etag,
        "error": store.error,
    }


def config_in_effect(app: CollectorApp) -> dict[str, Any]:
    """What ``GET /v1/config`` and ``GET /v1/rules`` serve right now, where from, and any file problem."""
    return {"config": _file_view(app.config), "rules": _file_view(app.rules), "config_etag": app.config_etag()}


def describe_body(body: Any, transfer_encoding: Any) -> dict[str, Any]:
    """How to show one body: ``kind`` is none, json, text, base64 or invalid-base64, with a note.

    Base64 bodies (forms, text, HTML, binary: see docs/wire.md "Bodies") are decoded to text when they are
    valid UTF-8 without control characters; anything else stays base64, and the note says why.
    """
    if body is None:
        return {"kind": "none", "text": "", "note": "no body"}
    if transfer_encoding == "base64" and isinstance(body, str):
        try:
            raw = base64.b64decode(body.strip(), validate=True)
        except (binascii.Error, ValueError):
            return {"kind": "invalid-base64", "text": body, "note": "declared base64, but is not valid base64"}
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and not has_control(text):
            return {"kind": "text", "text": text, "note": f"base64, decoded as UTF-8 text ({len(raw)} bytes)"}
        return {"kind": "base64", "text": body, "note": f"binary body ({len(raw)} bytes), shown as base64"}
    return {
        "kind": "json",
        "text": json.dumps(body, indent=2, ensure_ascii=False, sort_keys=False),
        "note": f"JSON ({transfer_encoding or 'no transfer_encoding'})",
    }


def _part(event: dict[str, Any], name: str) -> dict[str, Any]:
    part = event.get(name)
    if not isinstance(part, dict):
        return {"headers": {}, "body": describe_body(None, None)}
    headers = part.get("headers")
    return {
        "headers": {str(k): _header_text(v) for k, v in headers.items()} if isinstance(headers, dict) else {},
        "body": describe_body(part.get("body"), part.get("transfer_encoding")),
    }


def _header_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def describe_call(detail: dict[str, Any]) -> dict[str, Any]:
    """The JSON for one call: its summary, the raw event, and display-ready request and response parts."""
    event = detail.get("event")
    event_obj: dict[str, Any] = event if isinstance(event, dict) else {}
    return {**detail, "request": _part(event_obj, "request"), "response": _part(event_obj, "response")}
