"""Durability and concurrency: data survives a restart, and concurrent senders lose nothing."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Any

from moesif_collector import Collector
from moesif_collector.loadgen import send_batches


def test_data_survives_restart(tmp_path: Path, helpers: Any, make_event: Any) -> None:
    db = tmp_path / "collector.db"
    with Collector(db_path=db) as first:
        client = helpers.Client(first.url)
        assert client.post("/v1/events/batch", [make_event(i) for i in range(3)]).status == 201
        assert client.post("/v1/users", {"user_id": "u1"}).status == 201
        client.close()
        first_port = first.port
    with Collector(db_path=db) as second:
        assert second.port != 0
        assert second.count_events() == 3
        assert second.users() == [{"user_id": "u1"}]
        client = helpers.Client(second.url)
        assert client.post("/v1/events/batch", [make_event(9)]).status == 201
        client.close()
        ids = [c["id"] for c in second.calls()]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    assert first_port > 0
    # The file is a plain SQLite database in WAL mode with the documented tables and indexes.
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 4
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"events_time_cover", "events_route_cover", "events_user_activity", "events_company_activity"} <= indexes
    # Config and rules files were created beside the database.
    assert (tmp_path / "collector.config.json").exists() and (tmp_path / "collector.rules.json").exists()


def test_database_of_an_older_version_gains_routes(tmp_path: Path, make_event: Any) -> None:
    """A database written before route templates existed is upgraded in place when opened."""
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            """
            CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL, time TEXT,
                verb TEXT, path TEXT, uri TEXT, status INTEGER, user_id TEXT, company_id TEXT, duration_ms REAL,
                direction TEXT, json TEXT NOT NULL);
            CREATE INDEX events_time ON events(time);
            CREATE INDEX events_user_id ON events(user_id);
            INSERT INTO events (received_at, time, verb, path, status, json)
                VALUES ('2026-11-01T00:00:00.000', '2026-11-01T00:00:00.000', 'GET', '/items/42', 200, '{}');
            """
        )
    conn.close()
    with Collector(db_path=db) as upgraded:
        assert [c["route"] for c in upgraded.calls()] == ["/items/{id}"]
        assert upgraded.stats()["routes"][0]["route"] == "/items/{id}"
    with sqlite3.connect(db) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "events_time" not in indexes and "events_user_id" not in indexes and "events_time_cover" in indexes


def test_concurrent_senders_from_several_processes(collector: Collector) -> None:
    processes, batches, size = 4, 10, 50
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        accepted = pool.starmap(send_batches, [(collector.url, batches, size, seed) for seed in range(processes)])
    assert accepted == [batches * size] * processes
    assert collector.count_events() == processes * batches * size
    ingests = [r for r in collector.requests() if r["path"] == "/v1/events/batch"]
    assert len(ingests) == processes * batches and all(r["status"] == 201 for r in ingests)


def test_concurrent_threads_and_wait_for_events(collector: Collector, helpers: Any, make_event: Any) -> None:
    def send(offset: int) -> None:
        client = helpers.Client(collector.url)
        for b in range(5):
            assert client.post("/v1/events/batch", [make_event(offset + b * 10 + i) for i in range(10)]).status == 201
        client.close()

    threads = [threading.Thread(target=send, args=(n * 1000,)) for n in range(4)]
    for t in threads:
        t.start()
    events = collector.wait_for_events(200, timeout=20)
    for t in threads:
        t.join()
    assert len(events) == 200


def test_wait_for_events_times_out_with_count(collector: Collector) -> None:
    try:
        collector.wait_for_events(1, timeout=0.2)
    except TimeoutError as exc:
        assert "got 0" in str(exc)
    else:
        raise AssertionError("wait_for_events should time out")


def test_in_memory_database(helpers: Any, make_event: Any) -> None:
    with Collector(db_path=":memory:") as mem:
        client = helpers.Client(mem.url)
        assert client.post("/v1/events/batch", [make_event(1), make_event(2)]).status == 201
        assert client.get("/api/stats", app_id=None).json()["calls"] == 2
        client.close()
        assert mem.count_events() == 2


def test_clear(collector: Collector, client: Any, make_event: Any) -> None:
    client.post("/v1/events/batch", [make_event(1)])
    before = collector.calls()[0]["id"]
    assert client.request("POST", "/_admin/clear", None, {"Content-Type": "application/json"}).json() == {
        "cleared": True
    }
    assert collector.count_events() == 0 and collector.requests() == []
    client.post("/v1/events/batch", [make_event(2)])
    assert collector.calls()[0]["id"] > before  # ids are never reused, so followers never miss a call
