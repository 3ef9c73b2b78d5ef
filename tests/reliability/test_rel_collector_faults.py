"""Collector faults, per adapter: down from the start, 500s, 429 with Retry-After, a collector that hangs, and a full
queue. Each request must answer normally and promptly whatever the collector does, and what fits the bounds must
arrive (exactly once where the protocol allows it)."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from rel_support import KINDS, collector_on, free_port, hit, served, settings_for, wait_all, wait_until

N = 24
BATCH = 5


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_collector_down_from_the_start_then_up(kind: str, tmp_path: Path) -> None:
    port = free_port()
    tag = uuid.uuid4().hex
    with served(kind, settings_for(f"http://127.0.0.1:{port}", BATCH_SIZE=BATCH)) as app:
        hit(app.url, tag, N)  # every request answers promptly while nothing listens on the port
        wait_until(lambda: app.agent.snapshot()["retried"] >= 1, what="a failed attempt while down")
        collector = collector_on(port, tmp_path, "late.db")
        try:
            assert app.agent.flush(20)  # wakes the worker that is backing off
            seen = wait_all(collector, tag, N)
            assert sorted(seen) == list(range(N))
            assert set(seen.values()) == {1}, seen  # refused connections carry nothing: no duplicates
            snap = app.agent.snapshot()
            assert snap["sent"] == N and snap["dropped"] == 0 and snap["failed"] == 0, snap
        finally:
            collector.stop()


def test_a_longer_outage_packs_what_waits_and_all_of_it_arrives_once(kind: str, tmp_path: Path) -> None:
    """Down long enough for the backing-off worker to pack the waiting captures (a batch's worth at a time,
    compressed): they then hold a small part of their memory, and when the collector is back every one of them
    arrives, once, with its own request's details."""
    n = 60
    port = free_port()
    tag = uuid.uuid4().hex
    with served(kind, settings_for(f"http://127.0.0.1:{port}", BATCH_SIZE=BATCH)) as app:
        hit(app.url, tag, n)
        queue = app.agent._queue
        wait_until(lambda: not queue.compactable(), what="the waiting captures packed")
        assert len(queue) >= n - 3 * BATCH  # (the workers hold a failed batch each)
        assert queue.bytes < 250 * len(queue), (queue.bytes, len(queue))  # a frozen capture is counted ~1,100
        collector = collector_on(port, tmp_path, "late.db")
        try:
            assert app.agent.flush(20)
            seen = wait_all(collector, tag, n)
            assert sorted(seen) == list(range(n)) and set(seen.values()) == {1}, seen
            events = [e for e in collector.events() if tag in (e.get("request") or {}).get("uri", "")]
            assert all(e["request"]["verb"] == "GET" and e["response"]["status"] == 200 for e in events)
            snap = app.agent.snapshot()
            assert snap["sent"] == n and snap["dropped"] == 0 and snap["failed"] == 0, snap
        finally:
            collector.stop()


def test_500_for_the_first_batches_then_ok(kind: str, collector: Any) -> None:
    tag = uuid.uuid4().hex
    collector.set_faults("error500", times=3)
    with served(kind, settings_for(collector.url, BATCH_SIZE=BATCH)) as app:
        hit(app.url, tag, N)
        seen = wait_all(collector, tag, N, timeout=30)
        assert set(seen.values()) == {1}, seen  # a 500 stores nothing, so nothing is repeated
        assert app.agent.flush(10)
        snap = app.agent.snapshot()
        assert snap["retried"] >= 3 and snap["failed"] == 0 and snap["sent"] == N, snap
    assert [r["status"] for r in collector.requests() if r["path"] == "/v1/events/batch"].count(500) == 3


def test_429_with_retry_after_is_honoured(kind: str, collector: Any) -> None:
    tag = uuid.uuid4().hex
    collector.set_faults("status429", retry_after=1, times=2)
    with served(kind, settings_for(collector.url, BATCH_SIZE=BATCH)) as app:
        hit(app.url, tag, N)
        # no flush() here: it would wake the worker before Retry-After is up
        seen = wait_all(collector, tag, N, timeout=30)
        assert set(seen.values()) == {1}, seen
        assert app.agent.flush(10)
        snap = app.agent.snapshot()
        assert snap["retried"] >= 2 and snap["failed"] == 0 and snap["sent"] == N, snap
    assert [r["status"] for r in collector.requests() if r["path"] == "/v1/events/batch"].count(429) == 2


def test_hanging_collector_does_not_slow_requests(kind: str, collector: Any) -> None:
    tag = uuid.uuid4().hex
    collector.set_faults("hang")
    with served(kind, settings_for(collector.url, BATCH_SIZE=BATCH, REQUEST_TIMEOUT=1)) as app:
        hit(app.url, tag, N // 2)
        wait_until(lambda: app.agent.snapshot()["retried"] >= 1, timeout=15, what="a timed-out attempt")
        hit(app.url, tag + "-b", N // 2)  # still prompt with a worker stuck on a hung connection
        collector.reset_faults()
        assert app.agent.flush(20)
        first = wait_all(collector, tag, N // 2)
        second = wait_all(collector, tag + "-b", N // 2)
        # Nothing may be missing. A batch whose answer never came may have been stored by the collector all the
        # same and is then sent again, so duplicates are allowed, at most one batch's worth (BATCH_SIZE).
        dups = sum(v - 1 for v in first.values()) + sum(v - 1 for v in second.values())
        assert dups <= BATCH, (first, second)
        assert app.agent.snapshot()["failed"] == 0


def test_full_queue_drops_are_counted_logged_and_bounded(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="moesif")
    bound, n = 5, 20
    tag = uuid.uuid4().hex
    port = free_port()  # nothing listens: the collector is down for the whole test
    with served(
        kind, settings_for(f"http://127.0.0.1:{port}", EVENT_QUEUE_SIZE=bound, BATCH_SIZE=2, EVENT_WORKER_COUNT=1)
    ) as app:
        agent = app.agent
        for i in range(n):
            hit(app.url, f"{tag}-{i}", 1)
            assert len(agent._queue) <= bound  # memory: the queue never holds more than its bound
            assert agent.pending() <= bound + 2  # plus the one batch the worker holds
        wait_until(lambda: agent.snapshot()["queued"] + agent.snapshot()["dropped"] == n, what="all captures")
        snap = agent.snapshot()
        assert snap["dropped"] >= n - bound - 2, snap
        assert snap["sent"] == 0
    drops = [r for r in caplog.records if r.name == "moesif" and "event queue full" in r.getMessage()]
    assert drops, [r.getMessage() for r in caplog.records]
    assert "dropped" in drops[0].getMessage()
