"""The durable spool (``SPOOL_DIR``) end to end: Flask wrapped in moesifwsgi under werkzeug, the real collector on a
loopback port that is closed during the outage and served again after it.

- An outage longer than the memory queue allows (``EVENT_QUEUE_MAX_BYTES`` of 256 KiB holds about 250 of these
  events; a thousand are captured), then the collector is back: every event arrives exactly once, none is dropped.
- A normal exit during the outage (a deploy) puts what was queued on disk within the exit deadline.
- The app process is killed with SIGKILL during the outage and a new process starts on the same directory: every
  event that had reached the spool arrives, once; what was lost was still in memory, within the memory bounds.
- Two processes on one directory drain it together: no event is sent twice.
- A full disk (a 64 KiB tmpfs; without the right to mount one, a read-only directory): the app keeps answering,
  the spool falls back to memory with one log line, drops are counted, and everything not dropped arrives once.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from rel_support import collector_on, free_port, hit, ids_for, served, settings_for, wait_all, wait_until

from moesif_collector import Collector
from moesif_core.spool import Entry, decode

SCRIPT = Path(__file__).resolve().parent / "rel_spool_app.py"
QUEUE_BYTES = 256 * 1024
BATCH = 20
WORKERS = 2
#: What the memory queue can hold at most: each capture counts its bodies plus 1 KiB, and a ping has no body.
QUEUE_EVENTS = QUEUE_BYTES // 1024


def spool_settings(base_uri: str, spool: Path, **extra: Any) -> Dict[str, Any]:
    given: Dict[str, Any] = {
        "SPOOL_DIR": str(spool),
        "EVENT_QUEUE_MAX_BYTES": QUEUE_BYTES,
        "BATCH_SIZE": BATCH,
        "EVENT_WORKER_COUNT": WORKERS,
    }
    return settings_for(base_uri, **{**given, **extra})


def spool_files(spool: Path) -> List[Path]:
    """Every whole batch file under ``SPOOL_DIR`` (in its application's subdirectory), oldest first; temporary
    files of a killed writer are not."""
    if not spool.exists():
        return []
    return sorted((p for p in spool.rglob("*") if Entry.parse(p.name) is not None), key=lambda p: p.name)


def on_disk(spool: Path) -> List[Tuple[str, int]]:
    """``(tag, i)`` of every event in a whole spool file."""
    from urllib.parse import parse_qs, urlsplit

    out = []
    for path in spool_files(spool):
        for event in json.loads(gzip.decompress(decode(path.read_bytes()))):
            q = parse_qs(urlsplit(event["request"]["uri"]).query)
            out.append((q["rel"][0], int(q["i"][0])))
    return out


class AppProcess:
    """``rel_spool_app.py`` in its own process."""

    def __init__(self, base_uri: str, settings: Dict[str, Any]) -> None:
        env = dict(os.environ, REL_SETTINGS=json.dumps(settings), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), base_uri],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self._line()
        assert line.startswith("URL "), line
        self.url = line.split()[1]

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()  # blocks until the app answers (or dies: then it is empty)

    def command(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._line()

    def snapshot(self) -> Dict[str, int]:
        return dict(json.loads(self.command("snapshot")))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command("exit")
                self.proc.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@contextmanager
def app_process(base_uri: str, settings: Dict[str, Any]) -> Iterator[AppProcess]:
    app = AppProcess(base_uri, settings)
    try:
        yield app
    finally:
        app.close()


def exactly_once(seen: Counter[int], n: int) -> None:
    assert sorted(seen) == list(range(n)), sorted(set(range(n)) - set(seen))
    assert all(count == 1 for count in seen.values()), {i: c for i, c in seen.items() if c != 1}


def test_outage_longer_than_memory_then_every_event_arrives_once(tmp_path: Path) -> None:
    n = 1000
    port = free_port()  # nothing listens there yet: the collector is down
    spool = tmp_path / "spool"
    tag = uuid.uuid4().hex
    collector: Optional[Collector] = None
    try:
        with served("wsgi", spool_settings(f"http://127.0.0.1:{port}", spool)) as app:
            hit(app.url, tag, n)  # every request answers promptly (hit asserts it)
            wait_until(lambda: app.agent.snapshot()["spooled"] == n, timeout=30, what="every event on disk")
            snap = app.agent.snapshot()
            assert snap["dropped"] == 0 and snap["spooled"] == n and snap["sent"] == 0, snap
            assert n > QUEUE_EVENTS * 3  # memory alone would have dropped most of them

            collector = collector_on(port, tmp_path, "collector.db")
            app.agent.flush(5)  # also makes the spool try now, not at the end of its backoff
            exactly_once(wait_all(collector, tag, n, timeout=60), n)
            wait_until(lambda: not spool_files(spool), timeout=20, what="the spool to empty")
            exactly_once(ids_for(collector.events(), tag), n)  # and nothing came twice after the last one arrived
            snap = app.agent.snapshot()
            assert snap["sent"] == n and snap["failed"] == 0 and snap["spool_dropped"] == 0, snap
    finally:
        if collector is not None:
            collector.stop()


def test_sigkill_during_the_outage_then_a_new_process_sends_what_was_spooled(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spool = tmp_path / "spool"
    settings = spool_settings(base, spool)
    before, during = uuid.uuid4().hex, uuid.uuid4().hex
    collector: Optional[Collector] = None
    try:
        first = AppProcess(base, settings)
        try:
            hit(first.url, before, 300)
            wait_until(lambda: first.snapshot()["spooled"] == 300, timeout=30, what="the first 300 on disk")
            hit(first.url, during, 300)
            first.kill()  # SIGKILL right after the last answer: no exit flush, whatever was in memory is gone
        finally:
            first.close()
        spooled = on_disk(spool)
        assert len(spooled) == len(set(spooled))
        assert {i for t, i in spooled if t == before} == set(range(300))
        lost = 300 - sum(1 for t, _ in spooled if t == during)
        # Only what was still in memory can be lost: the queue (bounded by EVENT_QUEUE_MAX_BYTES) and the batches
        # the workers were building.
        assert 0 <= lost <= QUEUE_EVENTS + WORKERS * BATCH, lost
        print(f"killed with {lost} of the last 300 events not yet on disk")

        collector = collector_on(port, tmp_path, "collector.db")
        with app_process(base, settings) as second:
            hit(second.url, "second", 1)  # its first capture starts its drainer
            wait_until(lambda: not spool_files(spool), timeout=30, what="the new process to empty the spool")
            events = collector.events()
            stored = Counter((t, i) for t in (before, during) for i, c in ids_for(events, t).items() for _ in range(c))
            assert stored == Counter(spooled)  # every spooled event, once; nothing else from the killed process
    finally:
        if collector is not None:
            collector.stop()


def test_normal_exit_during_the_outage_puts_the_queue_on_disk(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    tag = uuid.uuid4().hex
    # 50 events are far below the queue's spill threshold, and the outage is younger than the spool's 5 s: what is
    # in memory when the process exits is put on disk by the exit flush
    base = f"http://127.0.0.1:{free_port()}"
    with app_process(base, spool_settings(base, spool, EXIT_FLUSH_TIMEOUT=5)) as app:
        hit(app.url, tag, 50)
        wait_until(lambda: app.snapshot()["queued"] == 50, what="every capture queued")
    assert app.proc.returncode == 0
    assert sorted(on_disk(spool)) == [(tag, i) for i in range(50)]


def test_two_processes_on_one_spool_send_each_event_once(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spool = tmp_path / "spool"
    settings = spool_settings(base, spool)
    n = 300
    tags = [uuid.uuid4().hex, uuid.uuid4().hex]
    collector: Optional[Collector] = None
    try:
        with app_process(base, settings) as a, app_process(base, settings) as b:
            for app, tag in ((a, tags[0]), (b, tags[1])):
                hit(app.url, tag, n)
            wait_until(
                lambda: a.snapshot()["spooled"] == n and b.snapshot()["spooled"] == n,
                timeout=30,
                what="both outages on disk",
            )
            files = len(spool_files(spool))
            collector = collector_on(port, tmp_path, "collector.db")
            for app in (a, b):  # both drainers try now, from the oldest file on: they meet on every file
                assert app.proc.stdin is not None
                app.proc.stdin.write("flush\n")
                app.proc.stdin.flush()
            for app in (a, b):
                assert app._line() == "FLUSHED"
            for tag in tags:
                wait_all(collector, tag, n, timeout=60)
            wait_until(lambda: not spool_files(spool), timeout=30, what="the spool to empty")
            events = collector.events()
            for tag in tags:
                exactly_once(ids_for(events, tag), n)
            sent = [a.snapshot()["sent"], b.snapshot()["sent"]]
            assert sum(sent) == 2 * n and files >= 2 * n // BATCH, (sent, files)
            print(f"{files} files; events sent by each process: {sent}")
    finally:
        if collector is not None:
            collector.stop()


@contextmanager
def full_disk(path: Path) -> Iterator[str]:
    """A directory that fills up: a 64 KiB tmpfs (root), else a read-only directory (anyone else); root without the
    right to mount (an unprivileged container) ignores a read-only mode, so there a regular file stands where the
    directory should be: nothing can be written under it, by anyone."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode == 0:
        try:
            yield "tmpfs"
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)
        return
    if os.geteuid() == 0:
        path.rmdir()
        path.touch()
        yield "not-a-directory"
        return
    path.chmod(0o500)
    try:
        yield "read-only"
    finally:
        path.chmod(0o700)


def test_full_disk_the_app_keeps_serving_and_drops_are_counted(
    tmp_path: Path, moesif_log: pytest.LogCaptureFixture
) -> None:
    n = 800  # more than memory holds, even with the waiting captures packed (~100 bytes each)
    port = free_port()
    tag = uuid.uuid4().hex
    collector: Optional[Collector] = None
    settings = spool_settings(f"http://127.0.0.1:{port}", tmp_path / "spool", EVENT_QUEUE_MAX_BYTES=16 * 1024)
    with full_disk(tmp_path / "spool") as kind:
        try:
            with served("wsgi", settings) as app:
                hit(app.url, tag, n)  # every request answers promptly, whatever the disk does
                counted = lambda: app.agent.snapshot()["queued"] + app.agent.snapshot()["dropped"]  # noqa: E731
                wait_until(lambda: counted() == n, timeout=10, what="every capture accepted or dropped")
                snap = app.agent.snapshot()
                assert snap["dropped"] > 0 and snap["spooled"] < n, snap
                if kind == "tmpfs":
                    assert snap["spooled"] > 0, snap  # it took what fitted before it was full
                fallbacks = [r for r in moesif_log.records if "keeping events in memory only" in r.getMessage()]
                assert len(fallbacks) == 1 and fallbacks[0].levelno == logging.WARNING, fallbacks

                up = collector = collector_on(port, tmp_path, "collector.db")
                app.agent.flush(10)
                wait_until(
                    lambda: sum(ids_for(up.events(), tag).values()) >= snap["queued"],
                    timeout=60,
                    what="everything not dropped",
                )
                wait_until(lambda: app.agent.pending() == 0 and not spool_files(tmp_path / "spool"), what="the end")
                seen = ids_for(up.events(), tag)
                assert len(seen) == snap["queued"] and all(c == 1 for c in seen.values()), seen
        finally:
            if collector is not None:
                collector.stop()
