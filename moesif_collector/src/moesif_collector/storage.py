"""SQLite storage for events, profiles and the ingestion request log.

Why SQLite: it is in the standard library, survives restarts, and lets ``tail``/``stats`` (other
processes) read while the server writes, thanks to WAL mode. Concurrency model: one writer connection
guarded by a lock (SQLite allows a single writer anyway, and serialising in Python avoids busy errors),
plus a small pool of reader connections so the web page and tests never wait behind a large batch.
A ``:memory:`` database has only the writer connection (separate connections would not share it).

Every batch is written in one transaction: a batch is stored whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from . import analytics
from .routes import route_template
from .timefmt import elapsed_ms, format_time, parse_time, utc_now

PROFILE_KINDS: dict[str, tuple[str, ...]] = {
    # table name -> (primary key column, other indexed columns...)
    "users": ("user_id", "company_id"),
    "companies": ("company_id",),
    "subscriptions": ("subscription_id", "company_id"),
}

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    time TEXT,
    verb TEXT,
    path TEXT,
    uri TEXT,
    status INTEGER,
    user_id TEXT,
    company_id TEXT,
    duration_ms REAL,
    direction TEXT,
    json TEXT NOT NULL,
    route TEXT
);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    company_id TEXT,
    received_at TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS companies (
    company_id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    subscription_id TEXT PRIMARY KEY,
    company_id TEXT,
    received_at TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER,
    app_id TEXT,
    user_agent TEXT,
    content_type TEXT,
    content_encoding TEXT,
    body_bytes INTEGER,
    items INTEGER,
    fault TEXT,
    error TEXT
);
"""

# Created after the migration (an older database gains the route column first). The views group and
# filter by these columns; the composite indexes answer the users, companies and routes views without
# reading the rows (measured: benchmarks/collector_queries.py).
_INDEXES = """
DROP INDEX IF EXISTS events_time;
DROP INDEX IF EXISTS events_user_id;
DROP INDEX IF EXISTS events_company_id;
DROP INDEX IF EXISTS events_path;
DROP INDEX IF EXISTS events_status;
DROP INDEX IF EXISTS events_scan_cover;
DROP INDEX IF EXISTS events_received_cover;
CREATE INDEX IF NOT EXISTS events_time_cover
    ON events(time, status, duration_ms, route, verb, path, user_id, company_id, received_at);
CREATE INDEX IF NOT EXISTS events_received_at ON events(received_at);
CREATE INDEX IF NOT EXISTS events_duration ON events(duration_ms, status);
CREATE INDEX IF NOT EXISTS events_route_cover ON events(route, verb, duration_ms, status, time);
CREATE INDEX IF NOT EXISTS events_user_activity ON events(user_id, time, status);
CREATE INDEX IF NOT EXISTS events_company_activity ON events(company_id, time, status);
"""

# One encoder for every stored document: building one per call (what json.dumps does with options) is slow.
# allow_nan=False: a value that overflowed to infinity (1e999) is refused (ValueError), never stored as the
# non-JSON ``Infinity`` that every later answer containing it would carry.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

EVENT_COLUMNS = (
    "id",
    "received_at",
    "time",
    "verb",
    "path",
    "uri",
    "status",
    "user_id",
    "company_id",
    "duration_ms",
    "direction",
    "route",
)


@dataclass(frozen=True)
class CallFilter:
    """Filters shared by the page, ``tail`` and the stats, so they always agree on what they count.

    ``path``, ``user`` and ``company`` match substrings (case-insensitive for ASCII, as SQLite ``LIKE``):
    what people type. ``user_id``, ``company_id``, ``verb`` and ``route`` (a template such as
    ``/items/{id}``) match exactly: what a click on a user or a route selects. ``status`` is a class such
    as ``"4xx"``. ``since`` (inclusive) and ``until`` (exclusive) bound the request time, in the stored
    form (``YYYY-MM-DDTHH:MM:SS.mmm``, UTC). ``after_id`` keeps events stored after that id (for
    following), ``before_id`` those stored before it (for paging back).
    """

    path: str = ""
    status: str = ""
    user: str = ""
    after_id: int = 0
    company: str = ""
    user_id: str = ""
    company_id: str = ""
    verb: str = ""
    route: str = ""
    since: str = ""
    until: str = ""
    before_id: int = 0

    def without_time(self) -> CallFilter:
        """The same filter over all time and ids (the chart brings its own time window)."""
        return replace(self, since="", until="", after_id=0, before_id=0)


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request to the ``/v1`` API, kept so tests can check what a client sent and how often."""

    method: str
    path: str
    status: int | None
    app_id: str | None = None
    user_agent: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    body_bytes: int | None = None
    items: int | None = None
    fault: str | None = None
    error: str | None = None


def _text_or_none(value: object) -> str | None:
    """Coerce an id-like value to text (ids may arrive as numbers), keeping ``None`` as ``None``."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def path_of(uri: object) -> str | None:
    """Return the path part of a request URI (no scheme, host or query), tolerating relative URIs."""
    if not isinstance(uri, str):
        return None
    try:
        path = urlsplit(uri).path
    except ValueError:  # e.g. a broken IPv6 host: keep what precedes the query string
        path = uri.split("?", 1)[0].split("#", 1)[0]
    return path or "/"


def event_row(event: Mapping[str, Any], received_at: str) -> tuple[Any, ...]:
    """Flatten one event into the indexed columns of ``events`` (the full JSON is kept alongside)."""
    request = event.get("request")
    response = event.get("response")
    req: Mapping[str, Any] = request if isinstance(request, Mapping) else {}
    resp: Mapping[str, Any] = response if isinstance(response, Mapping) else {}
    status = resp.get("status")
    if isinstance(status, bool) or not isinstance(status, int):
        status = None
    verb = req.get("verb")
    direction = event.get("direction")
    started = parse_time(req.get("time"))
    raw_time = req.get("time")
    path = path_of(req.get("uri"))
    return (
        received_at,
        format_time(started) if started is not None else (raw_time if isinstance(raw_time, str) else None),
        verb.upper() if isinstance(verb, str) else None,
        path,
        req.get("uri") if isinstance(req.get("uri"), str) else None,
        status,
        _text_or_none(event.get("user_id")),
        _text_or_none(event.get("company_id")),
        elapsed_ms(started, parse_time(resp.get("time"))),
        direction if isinstance(direction, str) else None,
        _ENCODER.encode(event),
        route_template(path),
    )


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only (0600), as the config files are: captured traffic
    (headers, bodies, tokens) is the more sensitive. SQLite gives its ``-wal`` and ``-shm`` files the same mode.
    An existing file keeps the mode it has."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _like_pattern(text: str) -> str:
    """Escape LIKE wildcards so user input is matched literally as a substring."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(flt: CallFilter) -> tuple[str, list[Any]]:
    """Build the WHERE clause for a filter; values always travel as parameters, never as SQL text."""
    clauses: list[str] = []
    params: list[Any] = []
    if flt.path:
        clauses.append("path LIKE ? ESCAPE '\\'")
        params.append(_like_pattern(flt.path))
    if flt.status:
        if flt.status not in STATUS_CLASSES:
            raise ValueError(f"status filter must be one of {', '.join(STATUS_CLASSES)}")
        low = int(flt.status[0]) * 100
        clauses.append("status >= ? AND status < ?")
        params.extend([low, low + 100])
    for column, text in (("user_id", flt.user), ("company_id", flt.company)):
        if text:
            clauses.append(f"{column} LIKE ? ESCAPE '\\'")
            params.append(_like_pattern(text))
    for column, value in (
        ("user_id", flt.user_id),
        ("company_id", flt.company_id),
        ("verb", flt.verb.upper()),
        ("route", flt.route),
    ):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    for clause, bound in (("time >= ?", flt.since), ("time < ?", flt.until), ("id > ?", flt.after_id)):
        if bound:
            clauses.append(clause)
            params.append(bound)
    if flt.before_id:
        clauses.append("id < ?")
        params.append(flt.before_id)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _needs_scan(flt: CallFilter) -> bool:
    """Whether a filter has a substring part, which no index can seek (see ``analytics.SCAN_INDEX``)."""
    return bool(flt.path or flt.user or flt.company)


def _received_since(conn: sqlite3.Connection, where: str, params: Sequence[Any], since: str) -> int:
    """Calls received since ``since`` matching the filter.

    Usually a short range of the received_at index, and under a filter a row read per call in it. Right
    after a bulk load that range is everything: then one pass over the covering time index is cheaper.
    """
    recent = int(conn.execute("SELECT COUNT(*) FROM events WHERE received_at >= ?", [since]).fetchone()[0])
    if not where or recent == 0:
        return recent
    index = "events_received_at" if recent <= 2000 else analytics.SCAN_INDEX
    row = conn.execute(
        f"SELECT COUNT(*) FROM events INDEXED BY {index}{where} AND received_at >= ?", [*params, since]
    ).fetchone()
    return int(row[0])


def _by_person(flt: CallFilter) -> bool:
    """Whether a filter names one user or company (their index finds the few rows directly)."""
    return bool(flt.user_id or flt.company_id)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a database written by an older version up to date: the route column, then the indexes."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    if "route" not in columns:
        conn.create_function("moesif_route_template", 1, route_template, deterministic=True)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ALTER TABLE events ADD COLUMN route TEXT")
        conn.execute("UPDATE events SET route = moesif_route_template(path)")
        conn.execute("COMMIT")
    conn.executescript(_INDEXES)


class Storage:
    """Thread-safe access to the collector database; see the module docstring for the model."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open (creating if needed) the database at ``path``; ``":memory:"`` keeps it in memory."""
        self.path = os.fspath(path)
        self._memory = self.path == ":memory:"
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._pool: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._closed = False
        self._changed = threading.Condition()
        self._version = 0
        if not self._memory:
            _create_private(self.path)
        self._writer = self._connect()
        with self._write_lock:
            if not self._memory:
                self._writer.execute("PRAGMA journal_mode=WAL")
            self._writer.executescript(_SCHEMA)
            _migrate(self._writer)

    # -- connections -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Open a connection usable from any thread (we serialise its use ourselves)."""
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        # NORMAL is durable against process crashes in WAL mode, and much faster than FULL.
        conn.execute("PRAGMA synchronous=NORMAL")
        # 32 MiB of page cache (the default is 2 MiB): the writer keeps the index pages it appends to, and
        # readers the indexes the page scans, instead of re-reading them (grows only as pages are used).
        conn.execute("PRAGMA cache_size=-32768")
        self._all.append(conn)
        return conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Lend a reader connection (or the writer, under its lock, for an in-memory database)."""
        if self._closed:
            raise RuntimeError("storage is closed")
        if self._memory:
            with self._write_lock:
                yield self._writer
            return
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            with self._pool_lock:
                conn = self._connect()
        try:
            yield conn
        finally:
            with self._pool_lock:
                if self._closed:
                    conn.close()
                else:
                    self._pool.append(conn)

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one write transaction: committed whole, or rolled back whole."""
        if self._closed:
            raise RuntimeError("storage is closed")
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def close(self) -> None:
        """Close every connection; later calls fail instead of touching a closed database."""
        with self._write_lock, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._all:
                conn.close()
            self._pool.clear()
        with self._changed:
            self._changed.notify_all()

    # -- change notification -----------------------------------------------------------------------

    @property
    def version(self) -> int:
        """A counter bumped after every committed write, for cheap "anything new?" checks."""
        with self._changed:
            return self._version

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Block until a write newer than ``version`` commits in this process, or ``timeout`` passes."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != version or self._closed, timeout)
            return self._version

    # -- writes ------------------------------------------------------------------------------------

    def insert_events(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Store a batch of events in one transaction and return how many were stored."""
        received_at = format_time(utc_now())
        rows = [event_row(event, received_at) for event in events]
        if not rows:
            return 0
        with self._writing() as conn:
            conn.executemany(
                "INSERT INTO events (received_at, time, verb, path, uri, status, user_id, company_id,"
                " duration_ms, direction, json, route) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def upsert_profiles(self, kind: str, items: Sequence[Mapping[str, Any]]) -> int:
        """Insert or replace users, companies or subscriptions by their id, in one transaction.

        The latest profile sent for an id wins whole (no field merging): the collector is a recorder
        of what clients send, and merging would hide what the last call actually contained.
        """
        columns = PROFILE_KINDS[kind]
        received_at = format_time(utc_now())
        rows = [
            (
                *(_text_or_none(item.get(column)) for column in columns),
                received_at,
                _ENCODER.encode(item),
            )
            for item in items
        ]
        if not rows:
            return 0
        names = ", ".join((*columns, "received_at", "json"))
        marks = ", ".join("?" * (len(columns) + 2))
        with self._writing() as conn:
            conn.executemany(f"INSERT OR REPLACE INTO {kind} ({names}) VALUES ({marks})", rows)
        return len(rows)

    def log_request(self, record: RequestRecord) -> None:
        """Append one entry to the request log."""
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO requests (received_at, method, path, status, app_id, user_agent, content_type,"
                " content_encoding, body_bytes, items, fault, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    format_time(utc_now()),
                    record.method,
                    record.path,
                    record.status,
                    record.app_id,
                    record.user_agent,
                    record.content_type,
                    record.content_encoding,
                    record.body_bytes,
                    record.items,
                    record.fault,
                    record.error,
                ),
            )

    def clear(self) -> None:
        """Delete all stored data (ids keep increasing, so followers never see an id twice)."""
        with self._writing() as conn:
            for table in ("events", "users", "companies", "subscriptions", "requests"):
                conn.execute(f"DELETE FROM {table}")

    # -- reads -------------------------------------------------------------------------------------

    def count_events(self, flt: CallFilter | None = None) -> int:
        """Number of stored events (matching ``flt`` when given)."""
        where, params = _where(flt or CallFilter())
        with self._reading() as conn:
            row = conn.execute(f"SELECT COUNT(*) FROM events{where}", params).fetchone()
        return int(row[0])

    def events(self, after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored events as the parsed JSON the client sent, oldest first."""
        sql = "SELECT json FROM events WHERE id > ? ORDER BY id"
        params: list[Any] = [after_id]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._reading() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [json.loads(row[0]) for row in rows]

    def calls(self, flt: CallFilter | None = None, limit: int = 100, newest_first: bool = True) -> list[dict[str, Any]]:
        """Summaries of stored events (the indexed columns, without the JSON) for lists and tails."""
        where, params = _where(flt or CallFilter())
        order = "DESC" if newest_first else "ASC"
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM events{where} ORDER BY id {order} LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [dict(zip(EVENT_COLUMNS, row)) for row in rows]

    def call(self, event_id: int) -> dict[str, Any] | None:
        """One stored event: its summary columns plus the full parsed event under ``"event"``."""
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {', '.join(EVENT_COLUMNS)}, json FROM events WHERE id = ?", (event_id,)
            ).fetchone()
        if row is None:
            return None
        summary = dict(zip(EVENT_COLUMNS, row[:-1]))
        summary["event"] = json.loads(row[-1])
        return summary

    def profiles(self, kind: str) -> list[dict[str, Any]]:
        """Stored users, companies or subscriptions, as last sent, in id order."""
        key = PROFILE_KINDS[kind][0]
        with self._reading() as conn:
            rows = conn.execute(f"SELECT json FROM {kind} ORDER BY {key}").fetchall()
        return [json.loads(row[0]) for row in rows]

    def requests(self) -> list[dict[str, Any]]:
        """The ``/v1`` request log, oldest first."""
        with self._reading() as conn:
            cursor = conn.execute("SELECT * FROM requests ORDER BY id")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def stats(self, flt: CallFilter | None = None, routes_limit: int = 50) -> dict[str, Any]:
        """Totals for the page and the ``stats`` command.

        - ``calls``: number of events; ``errors``/``error_rate``: share with status >= 400.
        - ``calls_per_minute``: average rate over the span of request times (a span under a minute
          counts as one minute); ``calls_last_minute``: events received in the last 60 s.
        - ``p50_ms``/``p95_ms``: nearest-rank percentiles of ``response.time - request.time``.
        - ``routes``: per (verb, route template) calls, errors, mean, p50 and p95, busiest first.
        """
        flt = flt or CallFilter()
        where, params = _where(flt)
        and_or_where = " AND " if where else " WHERE "
        since = format_time(utc_now() - timedelta(seconds=60))
        with self._reading() as conn:
            scan = _needs_scan(flt)
            if scan:
                # A substring filter reads every entry: read them once, from the index that covers them
                # all, and count here (SQL would need a pass per number, and one more per percentile).
                totals = analytics.totals_by_scan(conn, where, params, since)
                total, errors, first, last, last_minute = totals.counts
                percentiles = {"p50_ms": totals.percentile(50), "p95_ms": totals.percentile(95)}
            else:
                # One aggregate per query: each is then answered by an index alone (a count, a range, one
                # end), where one SELECT of them all scans every entry of an index.
                total, errors, first, last, timed = (
                    conn.execute(f"SELECT {what} FROM events{where}{extra}", params).fetchone()[0]
                    for what, extra in (
                        ("COUNT(*)", ""),
                        ("COUNT(*)", f"{and_or_where}status >= 400"),
                        ("MIN(time)", ""),
                        ("MAX(time)", ""),
                        ("COUNT(*)", f"{and_or_where}duration_ms IS NOT NULL"),
                    )
                )
                last_minute = _received_since(conn, where, params, since)
                source = f"FROM events{where}{and_or_where}duration_ms IS NOT NULL"
                percentiles = {
                    "p50_ms": analytics.nth_duration(conn, source, params, timed, 50),
                    "p95_ms": analytics.nth_duration(conn, source, params, timed, 95),
                }
            routes = (
                analytics.route_stats(conn, where, params, routes_limit, scan=scan, by_rows=_by_person(flt))
                if routes_limit
                else []
            )
        begin, end = parse_time(first), parse_time(last)
        span_minutes = (end - begin).total_seconds() / 60 if begin is not None and end is not None else 0.0
        return {
            "calls": int(total),
            "errors": int(errors),
            "error_rate": (errors / total) if total else 0.0,
            "calls_per_minute": total / max(span_minutes, 1.0) if total else 0.0,
            "calls_last_minute": int(last_minute),
            **percentiles,
            "routes": routes,
        }

    def routes(
        self, flt: CallFilter | None = None, limit: int = 200, sort: str = "calls", descending: bool = True
    ) -> list[dict[str, Any]]:
        """Per-route numbers (see :func:`analytics.route_stats`), sorted by ``sort``."""
        flt = flt or CallFilter()
        where, params = _where(flt)
        with self._reading() as conn:
            return analytics.route_stats(
                conn, where, params, limit, sort, descending, scan=_needs_scan(flt), by_rows=_by_person(flt)
            )

    def timeseries(self, flt: CallFilter | None = None, window: str = "1h") -> dict[str, Any]:
        """Traffic per bucket over the last ``window`` (see :func:`analytics.timeseries`); ignores time filters."""
        flt = (flt or CallFilter()).without_time()
        where, params = _where(flt)
        with self._reading() as conn:
            return analytics.timeseries(
                conn, where, params, window, utc_now(), scan=_needs_scan(flt), by_rows=_by_person(flt)
            )

    def people(
        self,
        kind: str,
        flt: CallFilter | None = None,
        limit: int = 100,
        offset: int = 0,
        sort: str = "last_seen",
        descending: bool = True,
    ) -> dict[str, Any]:
        """Users or companies with their activity (see :func:`analytics.people`)."""
        flt = flt or CallFilter()
        where, params = _where(flt)
        with self._reading() as conn:
            return analytics.people(
                conn,
                kind,
                where,
                params,
                flt != CallFilter(),
                limit,
                offset,
                sort=sort,
                descending=descending,
                # Activity per person under a filter their own index cannot answer: read the covering one.
                scan=flt != CallFilter() and not _by_person(flt),
            )
