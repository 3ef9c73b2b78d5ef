"""SQLite storage for events, profiles and the ingestion request log.

Why SQLite: it is in the standard library, survives restarts, and lets ``tail``/``stats`` (other
processes) read while the server writes, thanks to WAL mode. Concurrency model: one writer connection
guarded by a lock (SQLite allows a single writer anyway, and serialising in Python avoids busy errors),
plus a small pool of reader connections so the web page and tests never wait behind a large batch.
A ``:memory:`` database has only the writer connection (separate connections would not share it).

Every batch is written in one transaction: a batch is stored whole or not at all.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

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
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE INDEX IF NOT EXISTS events_path ON events(path);
CREATE INDEX IF NOT EXISTS events_status ON events(status);
CREATE INDEX IF NOT EXISTS events_user_id ON events(user_id);
CREATE INDEX IF NOT EXISTS events_company_id ON events(company_id);
CREATE INDEX IF NOT EXISTS events_received_at ON events(received_at);
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

# One encoder for every stored document: building one per call (what json.dumps does with options) is slow.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

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
)


@dataclass(frozen=True)
class CallFilter:
    """Filters shared by the page, ``tail`` and the stats, so they always agree on what they count.

    ``path`` and ``user`` match substrings (case-insensitive for ASCII, as SQLite ``LIKE``); ``status``
    is a class such as ``"4xx"``; ``after_id`` keeps only events stored after that id (for following).
    """

    path: str = ""
    status: str = ""
    user: str = ""
    after_id: int = 0


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
    return (
        received_at,
        format_time(started) if started is not None else (raw_time if isinstance(raw_time, str) else None),
        verb.upper() if isinstance(verb, str) else None,
        path_of(req.get("uri")),
        req.get("uri") if isinstance(req.get("uri"), str) else None,
        status,
        _text_or_none(event.get("user_id")),
        _text_or_none(event.get("company_id")),
        elapsed_ms(started, parse_time(resp.get("time"))),
        direction if isinstance(direction, str) else None,
        _ENCODER.encode(event),
    )


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
    if flt.user:
        clauses.append("user_id LIKE ? ESCAPE '\\'")
        params.append(_like_pattern(flt.user))
    if flt.after_id:
        clauses.append("id > ?")
        params.append(flt.after_id)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _percentile_offset(count: int, pct: float) -> int:
    """Nearest-rank percentile index (0-based) among ``count`` sorted values."""
    return max(0, min(count - 1, math.ceil(pct / 100.0 * count) - 1))


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
        self._writer = self._connect()
        with self._write_lock:
            if not self._memory:
                self._writer.execute("PRAGMA journal_mode=WAL")
            self._writer.executescript(_SCHEMA)

    # -- connections -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Open a connection usable from any thread (we serialise its use ourselves)."""
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        # NORMAL is durable against process crashes in WAL mode, and much faster than FULL.
        conn.execute("PRAGMA synchronous=NORMAL")
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
                " duration_ms, direction, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        - ``routes``: per (verb, path) counts, errors and mean duration, busiest first.
        """
        where, params = _where(flt or CallFilter())
        and_or_where = " AND " if where else " WHERE "
        since = format_time(utc_now() - timedelta(seconds=60))
        with self._reading() as conn:
            total, errors, first, last = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(status >= 400), 0), MIN(julianday(time)), MAX(julianday(time))"
                f" FROM events{where}",
                params,
            ).fetchone()
            last_minute = conn.execute(
                f"SELECT COUNT(*) FROM events{where}{and_or_where}received_at >= ?", [*params, since]
            ).fetchone()[0]
            timed_where = f"{where}{and_or_where}duration_ms IS NOT NULL"
            timed = conn.execute(f"SELECT COUNT(*) FROM events{timed_where}", params).fetchone()[0]
            percentiles: dict[str, float | None] = {"p50_ms": None, "p95_ms": None}
            if timed:
                for name, pct in (("p50_ms", 50.0), ("p95_ms", 95.0)):
                    percentiles[name] = conn.execute(
                        f"SELECT duration_ms FROM events{timed_where} ORDER BY duration_ms LIMIT 1 OFFSET ?",
                        [*params, _percentile_offset(timed, pct)],
                    ).fetchone()[0]
            route_rows = conn.execute(
                "SELECT verb, path, COUNT(*) AS n, COALESCE(SUM(status >= 400), 0), AVG(duration_ms)"
                f" FROM events{where} GROUP BY verb, path ORDER BY n DESC, path, verb LIMIT ?",
                [*params, routes_limit],
            ).fetchall()
        span_minutes = (last - first) * 24 * 60 if first is not None and last is not None else 0.0
        return {
            "calls": int(total),
            "errors": int(errors),
            "error_rate": (errors / total) if total else 0.0,
            "calls_per_minute": total / max(span_minutes, 1.0) if total else 0.0,
            "calls_last_minute": int(last_minute),
            **percentiles,
            "routes": [
                {
                    "verb": verb,
                    "path": path,
                    "calls": int(count),
                    "errors": int(route_errors),
                    "avg_ms": None if avg is None else round(float(avg), 3),
                }
                for verb, path, count, route_errors, avg in route_rows
            ],
        }
