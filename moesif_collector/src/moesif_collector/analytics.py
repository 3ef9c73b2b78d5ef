"""The aggregate queries behind the page's views: routes, traffic over time, users and companies.

Each function takes an open connection and a WHERE clause built by ``storage._where`` (values travel as
parameters). Where an index answers the filter, SQLite does the counting and Python sees one row per
route, bucket or person; percentiles (nearest rank, ``ceil(p / 100 * n)``, as the totals) are then each
read by one indexed, bounded query rather than a window function: SQLite's window functions sort every
row (about a second for 100,000 events here), a LIMIT/OFFSET walk of an index takes milliseconds. Where
no index answers it (a substring; a user or company for the route and chart indexes), the matching
entries are read once and counted here. The indexes are in ``storage._INDEXES``;
``benchmarks/collector_queries.py`` measures the page's requests on 100,000 events.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .timefmt import format_time


def _and(where: str) -> str:
    return " AND " if where else " WHERE "


def nth_duration(conn: sqlite3.Connection, source: str, params: Sequence[Any], timed: int, pct: int) -> Any:
    """The nearest-rank ``pct`` percentile of ``duration_ms`` among the ``timed`` rows of ``source``.

    ``source`` is ``FROM ... WHERE ...`` selecting rows with a duration. Rank ``ceil(pct / 100 * n)`` is
    read from whichever end is nearer: with a LIMIT, SQLite sorts through a heap of only OFFSET + 1 rows
    (or walks an index on ``duration_ms`` that many steps), so p95 costs a twentieth of a full sort.
    """
    if timed <= 0:
        return None
    rank = (pct * timed + 99) // 100
    if rank * 2 <= timed:
        order, offset = "ASC", rank - 1
    else:
        order, offset = "DESC", timed - rank
    row = conn.execute(
        f"SELECT duration_ms {source} ORDER BY duration_ms {order} LIMIT 1 OFFSET ?", [*params, offset]
    ).fetchone()
    return None if row is None else row[0]


def _timed(where: str) -> str:
    return f"{where}{_and(where)}duration_ms IS NOT NULL"


# A substring filter (path, user or company contains) can use no index to seek: every entry has to be
# read. Such queries read this one index, which holds every column a view needs (never a row, which
# carries the JSON), once, and Python groups what matches.
SCAN_INDEX = "events_time_cover"
SCAN = f" INDEXED BY {SCAN_INDEX}"


def nearest_rank(ordered: Sequence[float], pct: int) -> float | None:
    """The nearest-rank percentile of values already sorted ascending (``None`` for none)."""
    if not ordered:
        return None
    return ordered[(pct * len(ordered) + 99) // 100 - 1]


@dataclass
class ScanTotals:
    """The totals of the calls matching a substring filter, counted in one pass (see ``totals_by_scan``)."""

    counts: tuple[int, int, Any, Any, int]  # calls, errors (>= 400), first and last time, received since
    durations: list[float]

    def percentile(self, pct: int) -> float | None:
        return nearest_rank(self.durations, pct)


def totals_by_scan(conn: sqlite3.Connection, where: str, params: Sequence[Any], since: str) -> ScanTotals:
    """Calls, errors, first/last request time, calls received since ``since`` and sorted durations."""
    calls = errors = recent = 0
    first: Any = None
    last: Any = None
    durations: list[float] = []
    for time, status, duration, received_at in conn.execute(
        f"SELECT time, status, duration_ms, received_at FROM events{SCAN}{where}", list(params)
    ):
        calls += 1
        errors += status is not None and status >= 400
        recent += received_at >= since
        if time is not None:
            first = time if first is None or time < first else first
            last = time if last is None or time > last else last
        if duration is not None:
            durations.append(duration)
    durations.sort()
    return ScanTotals((calls, errors, first, last, recent), durations)


def _route(verb: Any, route: Any, calls: int, errors: int, avg: Any) -> dict[str, Any]:
    return {
        "verb": verb,
        "route": route,
        "path": route,  # the route table's column before templates: kept for scripts that read it
        "calls": int(calls),
        "errors": int(errors),
        "error_rate": errors / calls if calls else 0.0,
        "avg_ms": None if avg is None else round(float(avg), 3),
        "p50_ms": None,
        "p95_ms": None,
    }


def _routes_by_rows(conn: sqlite3.Connection, source: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, Any], list[Any]] = {}
    for verb, route, status, duration in conn.execute(f"SELECT verb, route, status, duration_ms {source}", params):
        group = groups.setdefault((verb, route), [0, 0, []])
        group[0] += 1
        group[1] += status is not None and status >= 400
        if duration is not None:
            group[2].append(duration)
    routes = []
    for (verb, route), (calls, errors, durations) in groups.items():
        durations.sort()
        entry = _route(verb, route, calls, errors, sum(durations) / len(durations) if durations else None)
        entry["p50_ms"] = nearest_rank(durations, 50)
        entry["p95_ms"] = nearest_rank(durations, 95)
        routes.append(entry)
    return routes


# -- routes ----------------------------------------------------------------------------------------

ROUTE_SORTS = ("calls", "errors", "error_rate", "avg", "p50", "p95", "route", "verb")


def route_stats(
    conn: sqlite3.Connection,
    where: str,
    params: Sequence[Any],
    limit: int = 50,
    sort: str = "calls",
    descending: bool = True,
    scan: bool = False,
    by_rows: bool = False,
) -> list[dict[str, Any]]:
    """Per (verb, route template): calls, errors, error rate, mean, p50 and p95 duration.

    One GROUP BY (answered from the ``events_route_cover`` index), then each route's percentiles by an
    indexed walk (:func:`nth_duration`): for the routes shown, or for all of them when sorting by one.
    That index cannot answer a filter on a user or a company (``by_rows``) or a substring (``scan``):
    then the matching rows are read once (a substring: from ``SCAN_INDEX``) and grouped here. Unknown
    values sort last in either direction; ties go to the busiest, then alphabetically.
    """
    if sort not in ROUTE_SORTS:
        raise ValueError(f"sort must be one of {', '.join(ROUTE_SORTS)}")
    by_percentile = sort in ("p50", "p95")
    if scan or by_rows:
        routes = _routes_by_rows(conn, f"FROM events{SCAN if scan else ''}{where}", list(params))
        return _sorted_routes(routes, sort, descending, limit)
    rows = conn.execute(
        "SELECT verb, route, COUNT(*), COALESCE(SUM(status >= 400), 0), AVG(duration_ms), COUNT(duration_ms)"
        f" FROM events{where} GROUP BY route, verb",
        list(params),
    ).fetchall()
    routes = [_route(verb, route, calls, errors, avg) for verb, route, calls, errors, avg, _ in rows]
    timed = {(r[0], r[1]): int(r[5]) for r in rows}
    source = f"FROM events{_timed(where)} AND route IS ? AND verb IS ?"

    def fill(route: dict[str, Any]) -> None:
        group = [*params, route["route"], route["verb"]]
        count = timed[(route["verb"], route["route"])]
        route["p50_ms"] = nth_duration(conn, source, group, count, 50)
        route["p95_ms"] = nth_duration(conn, source, group, count, 95)

    if by_percentile:
        for route in routes:
            fill(route)
    chosen = _sorted_routes(routes, sort, descending, limit)
    if not by_percentile:
        for route in chosen:
            fill(route)
    return chosen


def _sorted_routes(routes: list[dict[str, Any]], sort: str, descending: bool, limit: int) -> list[dict[str, Any]]:
    key = {"avg": "avg_ms", "p50": "p50_ms", "p95": "p95_ms"}.get(sort, sort)
    routes.sort(key=lambda r: (r["route"] or "", r["verb"] or ""))
    routes.sort(key=lambda r: r["calls"], reverse=True)
    present = [r for r in routes if r[key] is not None]
    present.sort(key=lambda r: r[key], reverse=descending)
    return (present + [r for r in routes if r[key] is None])[:limit]


# -- traffic over time -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A chart window: how far back from now, and the width of one bar."""

    seconds: int
    step: int


WINDOWS = {
    "15m": Window(15 * 60, 15),
    "1h": Window(60 * 60, 60),
    "6h": Window(6 * 3600, 5 * 60),
    "24h": Window(24 * 3600, 20 * 60),
}

_EPOCH = datetime(1970, 1, 1)


def timeseries(
    conn: sqlite3.Connection,
    where: str,
    params: Sequence[Any],
    window: str,
    now: datetime,
    scan: bool = False,
    by_rows: bool = False,
) -> dict[str, Any]:
    """Calls, 4xx, 5xx (also as per-minute rates) and p95 per bucket over ``window`` ending now.

    Bucketed by request time, aligned to multiples of the step, so a bar keeps its place between
    refreshes; the last one is still filling. Every bucket is listed, empty ones with no p95. One
    range query per bucket on the time index (it also holds the columns the filters and the numbers
    need, so no row is read), forced with INDEXED BY: an equality filter would otherwise tempt the
    planner into rescanning that filter's rows for each bucket. With a substring filter (``scan``), one
    pass over ``SCAN_INDEX``; with a user or company (``by_rows``), one read of their rows; bucketed here.
    """
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
    win = WINDOWS[window]
    now_s = int((now - _EPOCH).total_seconds())
    end_s = (now_s // win.step + 1) * win.step
    start = _EPOCH + timedelta(seconds=end_s - win.seconds)
    count = win.seconds // win.step
    bounds = (format_time(start), format_time(start + timedelta(seconds=win.seconds)))
    if scan or by_rows:
        source = f"FROM events{SCAN if scan else ''}{where}{_and(where)}time >= ? AND time < ?"
        counts = _buckets_by_rows(conn, source, [*params, *bounds], end_s - win.seconds, win.step, count)
    else:
        counts = [_bucket(conn, where, params, start + timedelta(seconds=i * win.step), win.step) for i in range(count)]
    per_minute = 60.0 / win.step
    buckets = [
        {
            "start": format_time(start + timedelta(seconds=index * win.step)),
            "calls": calls,
            "s4xx": s4xx,
            "s5xx": s5xx,
            "calls_per_minute": round(calls * per_minute, 3),
            "s4xx_per_minute": round(s4xx * per_minute, 3),
            "s5xx_per_minute": round(s5xx * per_minute, 3),
            "p95_ms": p95,
        }
        for index, (calls, s4xx, s5xx, p95) in enumerate(counts)
    ]
    return {
        "window": window,
        "step_seconds": win.step,
        "start": bounds[0],
        "end": bounds[1],
        "now": format_time(now),
        "calls": sum(b["calls"] for b in buckets),
        "buckets": buckets,
    }


def _bucket(
    conn: sqlite3.Connection, where: str, params: Sequence[Any], begin: datetime, step: int
) -> tuple[int, int, int, Any]:
    in_bucket = f"FROM events INDEXED BY events_time_cover{where}{_and(where)}time >= ? AND time < ?"
    bounds = [*params, format_time(begin), format_time(begin + timedelta(seconds=step))]
    calls, s4xx, s5xx, timed = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(status >= 400 AND status < 500), 0), COALESCE(SUM(status >= 500), 0),"
        f" COUNT(duration_ms) {in_bucket}",
        bounds,
    ).fetchone()
    p95 = nth_duration(conn, f"{in_bucket} AND duration_ms IS NOT NULL", bounds, timed, 95)
    return int(calls), int(s4xx), int(s5xx), p95


def _buckets_by_rows(
    conn: sqlite3.Connection, source: str, params: Sequence[Any], start_s: int, step: int, count: int
) -> list[tuple[int, int, int, Any]]:
    tallies = [[0, 0, 0] for _ in range(count)]
    durations: list[list[float]] = [[] for _ in range(count)]
    rows = conn.execute(f"SELECT time, status, duration_ms {source}", list(params))
    for time, status, duration in rows:
        try:
            index = (int((datetime.fromisoformat(time) - _EPOCH).total_seconds()) - start_s) // step
        except ValueError:  # a time the client sent that is not one (stored as sent)
            continue
        if not 0 <= index < count:
            continue
        tally = tallies[index]
        tally[0] += 1
        if status is not None:
            tally[1] += 400 <= status < 500
            tally[2] += status >= 500
        if duration is not None:
            durations[index].append(duration)
    return [(c, s4, s5, nearest_rank(sorted(d), 95)) for (c, s4, s5), d in zip(tallies, durations)]


# -- users and companies ---------------------------------------------------------------------------

PEOPLE_SORTS = {
    "last_seen": "last_seen",
    "first_seen": "first_seen",
    "calls": "calls",
    "errors": "errors",
    "id": "ids.id",
}


@dataclass(frozen=True)
class _Kind:
    table: str
    key: str


_KINDS = {"users": _Kind("users", "user_id"), "companies": _Kind("companies", "company_id")}


def people(
    conn: sqlite3.Connection,
    kind: str,
    where: str,
    params: Sequence[Any],
    filtered: bool,
    limit: int = 100,
    offset: int = 0,
    sort: str = "last_seen",
    descending: bool = True,
    scan: bool = False,
) -> dict[str, Any]:
    """Users or companies: their stored profile (if any) with the activity of their events.

    Listed: every stored profile plus every id seen in events (a user identified by the app but never
    sent as a profile is still someone who called the API). With call filters (``filtered``) only
    those with matching calls are listed, and their counts are of the matching calls.
    """
    spec = _KINDS[kind]
    if sort not in PEOPLE_SORTS:
        raise ValueError(f"sort must be one of {', '.join(PEOPLE_SORTS)}")
    key = spec.key
    direction = "DESC" if descending else "ASC"
    order = f"{PEOPLE_SORTS[sort]} IS NULL, {PEOPLE_SORTS[sort]} {direction}, ids.id"
    activity = f"""
        activity AS (
            SELECT {key} AS id, COUNT(*) AS calls, COALESCE(SUM(status >= 400), 0) AS errors,
                   MIN(time) AS first_seen, MAX(time) AS last_seen
            FROM events{SCAN if scan else ""}{where}{_and(where)}{key} IS NOT NULL GROUP BY {key}
        )"""
    ids = (
        "SELECT id FROM activity" if filtered else f"SELECT {key} AS id FROM {spec.table} UNION SELECT id FROM activity"
    )
    sql = f"""
        WITH {activity}, ids AS ({ids})
        SELECT ids.id, t.json, t.received_at, COALESCE(calls, 0), COALESCE(errors, 0), first_seen, last_seen,
               COUNT(*) OVER () AS total
        FROM ids LEFT JOIN {spec.table} AS t ON t.{key} = ids.id LEFT JOIN activity ON activity.id = ids.id
        ORDER BY {order} LIMIT ? OFFSET ?
    """
    rows = conn.execute(sql, [*params, limit, offset]).fetchall()
    items = [
        {
            "id": pid,
            "profile": None if profile is None else json.loads(profile),
            "profile_received_at": received_at,
            "calls": int(calls),
            "errors": int(errors),
            "first_seen": first_seen,
            "last_seen": last_seen,
        }
        for pid, profile, received_at, calls, errors, first_seen, last_seen, _total in rows
    ]
    total = int(rows[0][-1]) if rows else _count_people(conn, activity, ids, params)
    if kind == "companies" and items:
        _attach_company_extras(conn, items)
    return {kind: items, "total": total, "limit": limit, "offset": offset}


def _count_people(conn: sqlite3.Connection, activity: str, ids: str, params: Sequence[Any]) -> int:
    """How many are listed when the page asked for is past the end (the rows carried no total)."""
    row = conn.execute(f"WITH {activity}, ids AS ({ids}) SELECT COUNT(*) FROM ids", list(params)).fetchone()
    return int(row[0])


def _attach_company_extras(conn: sqlite3.Connection, items: list[dict[str, Any]]) -> None:
    """Each company's subscriptions (as last sent) and how many stored users name it."""
    ids = [item["id"] for item in items]
    marks = ", ".join("?" * len(ids))
    subscriptions: dict[str, list[Any]] = {cid: [] for cid in ids}
    for company_id, doc in conn.execute(
        f"SELECT company_id, json FROM subscriptions WHERE company_id IN ({marks}) ORDER BY subscription_id", ids
    ):
        subscriptions[company_id].append(json.loads(doc))
    users = dict(
        conn.execute(
            f"SELECT company_id, COUNT(*) FROM users WHERE company_id IN ({marks}) GROUP BY company_id", ids
        ).fetchall()
    )
    for item in items:
        item["subscriptions"] = subscriptions[item["id"]]
        item["users"] = int(users.get(item["id"], 0))
