"""The page's HTML, rendered on the server with the current data (so it shows something without JavaScript).

Every value from the database goes through :func:`_e` (HTML escaping, quotes included). The script
(``static/app.js``) then takes over: it polls the JSON API and redraws each view with DOM nodes and
``textContent``. The element ids and ``data-*`` attributes here are the page's stable hooks (the browser
test and the README rely on them).
"""

from __future__ import annotations

import html
from typing import Any

from .analytics import WINDOWS
from .app import CollectorApp
from .http_types import Request
from .storage import STATUS_CLASSES, CallFilter

VIEWS = ("calls", "routes", "users", "companies", "config")
VIEW_TITLES = {"calls": "Calls", "routes": "Routes", "users": "Users", "companies": "Companies", "config": "Config"}
WINDOW_TITLES = {"15m": "15 min", "1h": "1 h", "6h": "6 h", "24h": "24 h"}
# Exact filters, set by clicking a route, a user or a company: shown as removable chips.
CHIP_PARAMS = (("verb", "verb"), ("route", "route"), ("user_id", "user"), ("company_id", "company"))


def fmt_duration(value: float | None) -> str:
    """Duration for display (``12.3 ms``), empty when unknown."""
    return "" if value is None else f"{value:.1f} ms"


def fmt_rate(value: float) -> str:
    """A share as a percentage with one decimal."""
    return f"{value * 100:.1f}%"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _row(call: dict[str, Any]) -> str:
    status = call.get("status")
    css = f"s{str(status)[0]}xx" if isinstance(status, int) else "snone"
    cells = [
        ("time", call.get("time")),
        ("verb", call.get("verb")),
        ("path", call.get("path")),
        ("status", status),
        ("duration", fmt_duration(call.get("duration_ms"))),
        ("user", call.get("user_id")),
        ("company", call.get("company_id")),
    ]
    tds = "".join(f'<td data-col="{name}">{_e(value)}</td>' for name, value in cells)
    return f'<tr class="call-row {css}" id="call-{int(call["id"])}" data-id="{int(call["id"])}">{tds}</tr>'


def _route_row(route: dict[str, Any]) -> str:
    cells = [
        ("verb", route["verb"]),
        ("path", route["route"]),
        ("calls", route["calls"]),
        ("error_rate", fmt_rate(route["error_rate"])),
        ("p50", fmt_duration(route["p50_ms"])),
        ("p95", fmt_duration(route["p95_ms"])),
        ("avg", fmt_duration(route["avg_ms"])),
    ]
    tds = "".join(f'<td data-col="{name}">{_e(value)}</td>' for name, value in cells)
    return f'<tr class="route-row" data-verb="{_e(route["verb"])}" data-route="{_e(route["route"])}">{tds}</tr>'


def _chips(flt: CallFilter) -> str:
    chips = []
    for param, label in CHIP_PARAMS:
        value = getattr(flt, param)
        if value:
            chips.append(
                f'<span class="chip" data-param="{param}"><span class="chip-label">{label}</span> {_e(value)}</span>'
            )
    return "".join(chips)


def _tabs(view: str) -> str:
    return "".join(
        f'<button type="button" class="tab{" active" if name == view else ""}" id="tab-{name}" data-view="{name}"'
        f' role="tab" aria-selected="{"true" if name == view else "false"}">{title}'
        f' <span class="tab-count" id="tab-count-{name}"></span></button>'
        for name, title in VIEW_TITLES.items()
    )


def _windows(window: str) -> str:
    return "".join(
        f'<button type="button" class="window{" active" if name == window else ""}" data-window="{name}">'
        f"{WINDOW_TITLES[name]}</button>"
        for name in WINDOWS
    )


def render_page(app: CollectorApp, req: Request, flt: CallFilter) -> str:
    """The whole page with the current data, honouring the filters and view given in the query string."""
    view = req.param("view", "calls")
    view = view if view in VIEWS else "calls"
    window = req.param("window", "1h")
    window = window if window in WINDOWS else "1h"
    calls = app.storage.calls(flt, limit=100)
    stats = app.storage.stats(flt)
    options = "".join(
        f'<option value="{c}"{" selected" if flt.status == c else ""}>{c}</option>' for c in STATUS_CLASSES
    )
    hidden = {name: "" if name == view else " hidden" for name in VIEWS}
    return _PAGE.format(
        refresh_ms=int(app.refresh_ms),
        calls=stats["calls"],
        cpm=f"{stats['calls_per_minute']:.1f}",
        last_minute=stats["calls_last_minute"],
        error_rate=fmt_rate(stats["error_rate"]),
        p50=_e(fmt_duration(stats["p50_ms"]) or "\u2013"),
        p95=_e(fmt_duration(stats["p95_ms"]) or "\u2013"),
        path=_e(flt.path),
        user=_e(flt.user),
        company=_e(flt.company),
        time_from=_e(flt.since),
        time_to=_e(flt.until),
        status_options=options,
        chips=_chips(flt),
        tabs=_tabs(view),
        windows=_windows(window),
        rows="".join(_row(c) for c in calls),
        empty_hidden=" hidden" if calls else "",
        routes="".join(_route_row(r) for r in stats["routes"]),
        calls_hidden=hidden["calls"],
        routes_hidden=hidden["routes"],
        users_hidden=hidden["users"],
        companies_hidden=hidden["companies"],
        config_hidden=hidden["config"],
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>moesif-collector</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
</head>
<body data-refresh-ms="{refresh_ms}">
<header>
  <h1>moesif-collector</h1>
  <span id="live-status" data-state="static">static view</span>
  <label class="pause"><input type="checkbox" id="pause-toggle"> pause</label>
</header>
<section id="stats" aria-label="totals">
  <div class="stat"><span class="label">calls</span><span class="value" id="stat-calls">{calls}</span></div>
  <div class="stat"><span class="label">calls/min (avg)</span><span class="value" id="stat-cpm">{cpm}</span></div>
  <div class="stat"><span class="label">last 60 s</span>
    <span class="value" id="stat-last-minute">{last_minute}</span></div>
  <div class="stat"><span class="label">error rate (&ge;400)</span>
    <span class="value" id="stat-error-rate">{error_rate}</span></div>
  <div class="stat"><span class="label">p50</span><span class="value" id="stat-p50">{p50}</span></div>
  <div class="stat"><span class="label">p95</span><span class="value" id="stat-p95">{p95}</span></div>
</section>
<section id="chart-section" class="card" aria-label="traffic over time">
  <div class="chart-head">
    <h2>Traffic</h2>
    <div class="legend">
      <span class="key key-ok">calls/min</span><span class="key key-4xx">4xx</span>
      <span class="key key-5xx">5xx</span><span class="key key-p95">p95 latency</span>
    </div>
    <span id="chart-readout" class="readout"></span>
    <div id="chart-window" class="windows" role="group" aria-label="chart window">{windows}</div>
  </div>
  <div id="chart" data-points="0"><p class="chart-note">The chart needs JavaScript.</p></div>
</section>
<form id="filter-form" method="get" action="/">
  <label>path <input type="text" id="filter-path" name="path" value="{path}" placeholder="contains" autocomplete="off">
  </label>
  <label>status <select id="filter-status" name="status"><option value="">any</option>{status_options}</select></label>
  <label>user <input type="text" id="filter-user" name="user" value="{user}" placeholder="contains" autocomplete="off">
  </label>
  <label>company <input type="text" id="filter-company" name="company" value="{company}" placeholder="contains"
    autocomplete="off"></label>
  <label>from <input type="text" id="filter-from" name="from" value="{time_from}" placeholder="YYYY-MM-DDTHH:MM UTC"
    autocomplete="off" class="time"></label>
  <label>to <input type="text" id="filter-to" name="to" value="{time_to}" placeholder="YYYY-MM-DDTHH:MM UTC"
    autocomplete="off" class="time"></label>
  <span id="filter-chips">{chips}</span>
  <button type="submit" id="filter-apply">apply</button>
  <button type="button" id="filter-clear">clear</button>
</form>
<nav id="tabs" role="tablist">{tabs}</nav>
<main id="view-calls" class="view"{calls_hidden}>
  <section id="calls-section">
    <table id="calls-table">
      <thead><tr><th>time (UTC)</th><th>verb</th><th>path</th><th>status</th><th>duration</th><th>user</th>
      <th>company</th></tr></thead>
      <tbody id="calls-body">{rows}</tbody>
    </table>
    <p id="calls-empty"{empty_hidden}>No calls yet. Point a middleware's BASE_URI at this server.</p>
    <div class="pager">
      <button type="button" id="page-newest" hidden>&laquo; newest</button>
      <button type="button" id="page-newer" hidden>&lsaquo; newer</button>
      <span id="page-info"></span>
      <button type="button" id="page-older" hidden>older &rsaquo;</button>
    </div>
  </section>
  <aside id="event-detail" hidden data-event-id="">
    <div class="detail-head"><h2 id="detail-title">call</h2>
      <button type="button" id="detail-close">close</button></div>
    <dl id="detail-meta"></dl>
    <h3>request headers</h3><table class="headers"><tbody id="detail-request-headers"></tbody></table>
    <h3>request body <span class="note" id="detail-request-body-note"></span></h3>
    <pre id="detail-request-body"></pre>
    <h3>response headers</h3><table class="headers"><tbody id="detail-response-headers"></tbody></table>
    <h3>response body <span class="note" id="detail-response-body-note"></span></h3>
    <pre id="detail-response-body"></pre>
    <details><summary>raw event JSON</summary><pre id="detail-raw"></pre></details>
  </aside>
</main>
<section id="view-routes" class="view"{routes_hidden}>
  <p class="hint">Paths grouped by template: numeric, UUID-like and long hex segments become {{id}}.
    Click a column to sort, a route to see its calls.</p>
  <table id="routes-table" class="sortable">
    <thead><tr><th data-sort="verb">verb</th><th data-sort="route">route</th><th data-sort="calls">calls</th>
      <th data-sort="error_rate">error rate</th><th data-sort="p50">p50</th><th data-sort="p95">p95</th>
      <th data-sort="avg">avg</th></tr></thead>
    <tbody id="routes-body">{routes}</tbody>
  </table>
</section>
<section id="view-users" class="view"{users_hidden}>
  <p class="hint">Profiles sent with <code>update_user</code>, and every user id seen in calls.
    Click a column to sort, a user to see their calls.</p>
  <table id="users-table" class="sortable">
    <thead><tr><th data-sort="id">user</th><th>company</th><th>metadata</th><th data-sort="first_seen">first seen</th>
      <th data-sort="last_seen">last seen</th><th data-sort="calls">calls</th><th data-sort="errors">errors</th>
      </tr></thead>
    <tbody id="users-body"></tbody>
  </table>
  <p class="empty" id="users-empty" hidden>No users yet.</p>
  <div class="pager"><button type="button" class="prev" data-for="users">&lsaquo; previous</button>
    <span class="page-info" id="users-info"></span>
    <button type="button" class="next" data-for="users">next &rsaquo;</button></div>
</section>
<section id="view-companies" class="view"{companies_hidden}>
  <p class="hint">Profiles sent with <code>update_company</code>, their subscriptions, and every company id seen in
    calls. Click a company to see its calls.</p>
  <table id="companies-table" class="sortable">
    <thead><tr><th data-sort="id">company</th><th>domain</th><th>metadata</th><th>subscriptions</th><th>users</th>
      <th data-sort="first_seen">first seen</th><th data-sort="last_seen">last seen</th>
      <th data-sort="calls">calls</th><th data-sort="errors">errors</th></tr></thead>
    <tbody id="companies-body"></tbody>
  </table>
  <p class="empty" id="companies-empty" hidden>No companies yet.</p>
  <div class="pager"><button type="button" class="prev" data-for="companies">&lsaquo; previous</button>
    <span class="page-info" id="companies-info"></span>
    <button type="button" class="next" data-for="companies">next &rsaquo;</button></div>
</section>
<section id="view-config" class="view"{config_hidden}>
  <p class="hint">What <code>GET /v1/config</code> and <code>GET /v1/rules</code> serve right now (read-only: edit the
    files, they are re-read when they change).</p>
  <div class="config-grid">
    <div class="card" id="config-sampling"><h2>Sampling</h2>
      <p class="file">from <code id="config-file"></code></p><p class="error" id="config-error" hidden></p>
      <div id="config-body"></div>
      <details><summary>file content</summary><pre id="config-raw"></pre></details></div>
    <div class="card" id="config-rules"><h2>Governance rules</h2>
      <p class="file">from <code id="rules-file"></code></p><p class="error" id="rules-error" hidden></p>
      <div id="rules-body"></div>
      <details><summary>file content</summary><pre id="rules-raw"></pre></details></div>
  </div>
</section>
</body>
</html>
"""
