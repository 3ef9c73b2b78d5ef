"""The collector dies mid-run and comes back (a new process on the same port and the same database): requests keep
answering promptly while it is down, and once it is back every event is stored, exactly once but for at most the one
batch that was in flight when it died."""

from __future__ import annotations

import uuid
from pathlib import Path

from rel_support import collector_on, free_port, hit, served, settings_for, wait_all, wait_until

N = 20
BATCH = 5


def test_collector_dies_mid_run_and_comes_back(tmp_path: Path) -> None:
    port = free_port()
    tag = uuid.uuid4().hex
    first = collector_on(port, tmp_path)
    second = None
    try:
        with served("wsgi", settings_for(first.url, BATCH_SIZE=BATCH)) as app:
            hit(app.url, tag, N)
            wait_all(first, tag, N)  # the first half arrives while the collector is up
            first.stop()
            # Down: every request still answers promptly (hit asserts each one under PROMPT seconds).
            hit(app.url, tag + "-down", N)
            wait_until(lambda: app.agent.snapshot()["retried"] >= 1, timeout=10, what="a failed attempt while down")
            second = collector_on(port, tmp_path)  # back: same port, same database file
            assert app.agent.flush(20)  # wakes the worker that is backing off
            before = wait_all(second, tag, N)
            during = wait_all(second, tag + "-down", N)
            assert sorted(before) == list(range(N)) and sorted(during) == list(range(N))
            # Nothing may be missing. Only a batch that was in flight when the collector died may have been stored
            # without its answer reaching the agent, and is then sent again: at most one batch's worth of duplicates.
            dups = sum(v - 1 for v in before.values()) + sum(v - 1 for v in during.values())
            assert dups <= BATCH, (before, during)
            snap = app.agent.snapshot()
            assert snap["dropped"] == 0 and snap["failed"] == 0, snap
    finally:
        first.stop()
        if second is not None:
            second.stop()
