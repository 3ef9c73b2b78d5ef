"""The durable spool (``SPOOL_DIR``) in the core: real files, the real local collector over loopback.

The app-level scenarios (outages longer than memory, ``kill -9``, two processes, a full disk) are in
``tests/reliability/test_rel_spool.py``; here: the file format, what reaches the disk, order, bounds, damaged files
and the settings.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from moesif_collector import Collector
from moesif_core import Agent, BodyTap, RawCapture, Settings
from moesif_core import spool as spool_module
from moesif_core.spool import CorruptFile, Entry, SpoolFiles, decode, spool_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_agent(base_uri: str, spool: Path, **kw: Any) -> Agent:
    settings = Settings.from_mapping(
        {
            "APPLICATION_ID": "spool-test",
            "BASE_URI": base_uri,
            "SPOOL_DIR": str(spool),
            "EVENT_BATCH_TIMEOUT": 0.05,
            "BATCH_SIZE": 10,
            **kw,
        }
    )
    return Agent(settings, user_agent="moesif-core-tests/1")


def capture(agent: Agent, i: int, secret: str = "nothing") -> bool:
    tap = BodyTap(agent.settings.max_body_size)
    tap.feed(json.dumps({"i": i, "password": secret}).encode())
    return agent.capture(
        RawCapture(
            method="POST",
            uri=f"http://app.local/items/{i}",
            request_time=time.time(),
            response_time=time.time(),
            response_status=201,
            request_body=tap,
            request_headers=[("content-type", "application/json"), ("x-api-secret", secret)],
        )
    )


def files_of(agent: Agent) -> Path:
    """Where ``agent`` keeps its batches: its application's subdirectory of ``SPOOL_DIR``."""
    s = agent.settings
    assert s.spool_dir is not None
    return Path(spool_path(s.spool_dir, s.application_id, s.base_uri))


def spooled_batches(spool: Path) -> List[List[Dict[str, Any]]]:
    """Every whole batch in the directory, oldest first, as the collector would get it."""
    out = []
    for name in sorted(os.listdir(spool)):
        if Entry.parse(name) is not None:
            out.append(json.loads(gzip.decompress(decode((spool / name).read_bytes()))))
    return out


def item(event: Dict[str, Any]) -> int:
    return int(event["request"]["uri"].rsplit("/", 1)[1])


def wait_until(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_file_format_detects_partial_and_damaged_files(tmp_path: Path) -> None:
    files = SpoolFiles(str(tmp_path))
    entry = files.write(b"payload bytes", 3)
    path = tmp_path / entry.name
    assert Entry.parse(entry.name) == entry and entry.events == 3 and entry.size == path.stat().st_size
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    assert decode(data) == b"payload bytes"
    for damaged in (data[:-1], data[:10], data[:-2] + b"XY", b"JUNK" + data[4:]):
        with pytest.raises(CorruptFile):
            decode(damaged)
    assert [e.name for e in files.list()] == [entry.name]


def test_outage_spills_masked_batches_and_they_are_sent_oldest_first(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    port = free_port()

    def mask(event: Any) -> Any:
        event.metadata = {"masked_by_app": True}
        return event

    agent = make_agent(
        f"http://127.0.0.1:{port}",
        spool,
        REQUEST_HEADER_MASKS=["x-api-secret"],
        REQUEST_BODY_MASKS=["password"],
        MASK_EVENT_MODEL=mask,
    )
    collector = None
    try:
        for i in range(45):
            assert capture(agent, i, secret="SEKRET-SPOOL")
        assert agent.flush(10)  # the collector is down: a flush puts what it cannot send on disk
        snap = agent.snapshot()
        assert snap["spooled"] == 45 and snap["sent"] == 0 and snap["failed"] == 0 and snap["spool_bytes"] > 0
        assert os.listdir(spool) == [files_of(agent).name]
        spool = files_of(agent)
        names = sorted(os.listdir(spool))
        assert names and all(stat.S_IMODE((spool / n).stat().st_mode) == 0o600 for n in names)
        raw = b"".join(gzip.decompress(decode((spool / n).read_bytes())) for n in names)
        assert b"SEKRET-SPOOL" not in raw  # masks and MASK_EVENT_MODEL ran before anything reached the disk
        batches = spooled_batches(spool)
        assert all(e["metadata"] == {"masked_by_app": True} for b in batches for e in b)
        on_disk = [item(e) for b in batches for e in b]
        assert sorted(on_disk) == list(range(45))

        collector = Collector(port=port, db_path=str(tmp_path / "c.db")).start()
        events = collector.wait_for_events(45, timeout=30)  # the drainer's backoff is short after one failure
        assert [item(e) for e in events] == on_disk  # oldest file first, each once
        wait_until(lambda: not os.listdir(spool), what="the spool to empty")
        snap = agent.snapshot()
        assert snap["sent"] == 45 and snap["spool_bytes"] == 0 and snap["spool_dropped"] == 0
    finally:
        agent.shutdown(1)
        if collector is not None:
            collector.stop()


def test_a_blip_stays_in_memory_a_longer_outage_goes_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setattr(spool_module, "SPILL_AFTER", 60.0)
    agent = make_agent(f"http://127.0.0.1:{port}", tmp_path / "blip")
    collector = None
    try:
        for i in range(5):
            capture(agent, i)
        wait_until(lambda: agent.snapshot()["retried"] >= 1, what="a failed attempt")
        collector = Collector(port=port, db_path=str(tmp_path / "c.db")).start()
        # no flush (a flush while the collector is thought down puts what it holds on disk): the worker's own
        # retry sends the batch from memory
        wait_until(lambda: agent.snapshot()["sent"] == 5, what="the retry to send the batch")
        assert agent.snapshot()["spooled"] == 0  # the disk was never needed
    finally:
        agent.shutdown(1)
        if collector is not None:
            collector.stop()

    monkeypatch.setattr(spool_module, "SPILL_AFTER", 0.2)
    agent = make_agent(f"http://127.0.0.1:{free_port()}", tmp_path / "outage")
    try:
        for i in range(5):  # far below the queue's bounds: only the outage's age sends these to disk
            capture(agent, i)
        wait_until(lambda: agent.snapshot()["spooled"] == 5, what="the outage to go to disk")
    finally:
        agent.shutdown(1)


def test_a_hung_collector_holds_the_workers_only_until_they_spill(
    collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "SPILL_AFTER", 0.5)
    collector.set_faults("hang")  # accepts the connection, never answers
    agent = make_agent(collector.url, tmp_path / "spool", REQUEST_TIMEOUT=1)
    try:
        for i in range(30):
            capture(agent, i)
        wait_until(lambda: agent.snapshot()["spooled"] >= 20, what="the held batches on disk")
        for i in range(30, 60):  # spilling now: new batches go to disk without another attempt each
            capture(agent, i)
        wait_until(lambda: agent.snapshot()["spooled"] == 60, timeout=30, what="the rest on disk")
        collector.set_faults("ok")
        agent.flush(5)
        assert sorted(item(e) for e in collector.wait_for_events(60, timeout=30)) == list(range(60))
        assert agent.snapshot()["dropped"] == 0
    finally:
        agent.shutdown(1)


def test_what_an_earlier_process_left_is_sent_and_damaged_files_are_skipped(
    tmp_path: Path, collector: Collector, moesif_log: pytest.LogCaptureFixture
) -> None:
    spool = Path(spool_path(str(tmp_path / "spool"), "spool-test", collector.url))
    spool.mkdir(parents=True)
    files = SpoolFiles(str(spool))
    good = [{"request": {"uri": "http://app.local/left/0", "verb": "GET", "time": "2024-01-01T00:00:00.000"}}]
    files.write(gzip.compress(json.dumps(good).encode()), 1)
    cut = files.write(gzip.compress(json.dumps(good * 3).encode()), 3)
    with open(spool / cut.name, "r+b") as f:  # cut short, as a crash mid-write without the rename would leave it
        f.truncate(cut.size - 5)
    (spool / ".tmp-999999-0").write_bytes(b"half a batch")  # a dead writer's temporary file, an hour old
    os.utime(spool / ".tmp-999999-0", (time.time() - 3600, time.time() - 3600))

    agent = make_agent(collector.url, tmp_path / "spool")
    try:
        capture(agent, 1)  # the first capture starts the workers and the drainer
        wait_until(lambda: not os.listdir(spool), what="the spool to empty")
        events = collector.wait_for_events(2)
        assert sorted(e["request"]["uri"] for e in events) == ["http://app.local/items/1", "http://app.local/left/0"]
        snap = agent.snapshot()
        assert snap["spool_dropped"] == 3 and snap["spooled"] == 0
        assert any("could not be read" in r.getMessage() for r in moesif_log.records)
    finally:
        agent.shutdown(1)


def test_a_spooled_batch_too_large_for_the_collector_is_split_and_a_refused_one_dropped(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    # the collector takes bodies of at most 6 KB (decompressed): a batch of 10 events of about 1.3 KB is answered 413
    collector = Collector(db_path=str(tmp_path / "c.db"), max_body=6000).start()
    try:
        files = SpoolFiles(spool_path(str(spool_dir), "spool-test", collector.url))
        files.ensure()
        big = [
            {
                "request": {"uri": f"http://app.local/big/{i}", "verb": "GET", "time": "2024-01-01T00:00:00.000"},
                "metadata": {"pad": "x" * 1200},
            }
            for i in range(10)
        ]
        files.write(gzip.compress(json.dumps(big).encode()), 10)
        files.write(gzip.compress(json.dumps([{"request": {"uri": "no time, no verb"}}]).encode()), 1)  # 400
        agent = make_agent(collector.url, spool_dir)
        try:
            capture(agent, 0)  # starts the drainer
            wait_until(lambda: not os.listdir(files.path), what="the spool to empty")
            uris = sorted(e["request"]["uri"] for e in collector.wait_for_events(11))
            assert uris == sorted([f"http://app.local/big/{i}" for i in range(10)] + ["http://app.local/items/0"])
            snap = agent.snapshot()
            assert snap["failed"] == 1 and snap["spool_dropped"] == 0, snap
            assert any(r["status"] == 413 for r in collector.requests())
        finally:
            agent.shutdown(1)
    finally:
        collector.stop()


def test_a_split_that_cannot_be_written_leaves_the_batch_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moesif_log: pytest.LogCaptureFixture
) -> None:
    # as above, the collector answers the spooled batch of 10 with 413; the disk refuses the second half of the first
    # split: the first half must not stay beside the whole batch (it would be sent twice)
    collector = Collector(db_path=str(tmp_path / "c.db"), max_body=6000).start()
    try:
        files = SpoolFiles(spool_path(str(tmp_path / "spool"), "spool-test", collector.url))
        files.ensure()
        big = [
            {
                "request": {"uri": f"http://app.local/big/{i}", "verb": "GET", "time": "2024-01-01T00:00:00.000"},
                "metadata": {"pad": "x" * 1200},
            }
            for i in range(10)
        ]
        files.write(gzip.compress(json.dumps(big).encode()), 10)
        writes = []
        original = SpoolFiles.write

        def full_once(self: SpoolFiles, *args: Any, **kwargs: Any) -> Entry:
            writes.append(1)
            if len(writes) == 2:
                raise OSError(28, "No space left on device")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(SpoolFiles, "write", full_once)
        monkeypatch.setattr(spool_module, "IDLE_SCAN", 0.1)  # the drainer's pause after an error
        agent = make_agent(collector.url, tmp_path / "spool")
        try:
            capture(agent, 0)  # starts the drainer
            wait_until(lambda: not os.listdir(files.path), what="the spool to empty")
            uris = [e["request"]["uri"] for e in collector.wait_for_events(11)]
            assert sorted(uris) == sorted(
                [f"http://app.local/big/{i}" for i in range(10)] + ["http://app.local/items/0"]
            )
            assert len(writes) >= 4 and any("spool error" in r.getMessage() for r in moesif_log.records)
        finally:
            agent.shutdown(1)
        assert collector.count_events() == 11  # nothing came twice
    finally:
        collector.stop()


def test_only_the_workers_and_the_spool_thread_touch_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads = set()
    for name in ("ensure", "write", "list", "claim"):
        original = getattr(SpoolFiles, name)

        def spy(self: SpoolFiles, *args: Any, _original: Any = original) -> Any:
            threads.add(threading.current_thread().name)
            return _original(self, *args)

        monkeypatch.setattr(SpoolFiles, name, spy)
    agent = make_agent(f"http://127.0.0.1:{free_port()}", tmp_path / "spool", EVENT_QUEUE_MAX_BYTES=40_000)
    try:
        for i in range(200):  # far past the spill threshold: the outage goes to disk while we capture
            capture(agent, i)
            time.sleep(0.001)
        wait_until(lambda: agent.snapshot()["spooled"] > 0, what="a spill")
        assert agent.flush(10)
        assert threads and all(t.startswith(("moesif-worker-", "moesif-spool")) for t in threads), threads
    finally:
        agent.shutdown(1)


def test_over_the_bound_the_oldest_batches_are_dropped_and_counted(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    port = free_port()
    # each batch of 10 events is about 600 bytes gzipped: room for a few. One worker, so that files are written in
    # the order of the events in them.
    agent = make_agent(f"http://127.0.0.1:{port}", spool, SPOOL_MAX_BYTES=2500, EVENT_WORKER_COUNT=1)
    collector = None
    try:
        for i in range(100):
            capture(agent, i)
        assert agent.flush(10)

        def settled() -> bool:
            # the drainer may be trying the oldest file right now: it deletes it once that attempt fails
            return sum(e.size for e in SpoolFiles(str(files_of(agent))).list()) <= 2500

        wait_until(settled, what="the spool to be within SPOOL_MAX_BYTES")
        snap = agent.snapshot()
        assert snap["spooled"] == 100 and 0 < snap["spool_dropped"] < 100
        kept = sorted(item(e) for b in spooled_batches(files_of(agent)) for e in b)
        assert len(kept) == 100 - snap["spool_dropped"]
        assert kept == list(range(100 - len(kept), 100))  # the newest survive
        collector = Collector(port=port, db_path=str(tmp_path / "c.db")).start()
        assert sorted(item(e) for e in collector.wait_for_events(len(kept), timeout=30)) == kept
    finally:
        agent.shutdown(1)
        if collector is not None:
            collector.stop()


def test_apps_sharing_a_spool_dir_never_send_each_others_events(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    agents = {app: make_agent(base, tmp_path / "shared", APPLICATION_ID=app) for app in ("app-a", "app-b")}
    counts = {"app-a": 30, "app-b": 50}
    collector = None
    try:
        for app, agent in agents.items():
            for i in range(counts[app]):
                capture(agent, i)
            assert agent.flush(10) and agent.snapshot()["spooled"] == counts[app]
        assert len(os.listdir(tmp_path / "shared")) == 2  # one subdirectory each, named by a hash
        assert not any("app-" in name for _, _, names in os.walk(tmp_path / "shared") for name in names)
        collector = Collector(port=port, db_path=str(tmp_path / "c.db")).start()
        collector.wait_for_events(80, timeout=30)
        for agent in agents.values():
            wait_until(lambda: not os.listdir(files_of(agent)), what="both spools to empty")  # noqa: B023
        items: Dict[str, int] = {}
        for r in collector.requests():
            if r["path"] == "/v1/events/batch":
                items[r["app_id"]] = items.get(r["app_id"], 0) + r["items"]
        assert items == counts
    finally:
        for agent in agents.values():
            agent.shutdown(1)
        if collector is not None:
            collector.stop()


def test_unusable_directory_falls_back_to_memory_with_one_log_line(
    tmp_path: Path, collector: Collector, moesif_log: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    agent = make_agent(collector.url, blocker / "spool", EVENT_QUEUE_MAX_BYTES=20_000)
    collector.set_faults("error500")
    try:
        for i in range(20):
            capture(agent, i)
        wait_until(lambda: agent.snapshot()["retried"] >= 2, what="both workers holding a failed batch")
        for i in range(20, 60):
            capture(agent, i)  # never raises: the queue fills, the spool cannot take anything
        wait_until(lambda: agent.snapshot()["dropped"] > 0, what="drops from the full memory queue")

        def fallbacks() -> List[logging.LogRecord]:
            return [r for r in moesif_log.records if "keeping events in memory only" in r.getMessage()]

        wait_until(lambda: bool(fallbacks()), what="the fallback's log line")
        snap = agent.snapshot()
        assert snap["spooled"] == 0 and snap["dropped"] > 0
        collector.set_faults("ok")
        assert agent.flush(10)  # what stayed in memory is sent as without a spool
        assert agent.snapshot()["sent"] == snap["queued"]
        # the workers failed and met the unusable spool again and again meanwhile: still one line
        assert len(fallbacks()) == 1, [r.getMessage() for r in moesif_log.records]
    finally:
        agent.shutdown(1)


def test_spool_settings_are_validated(tmp_path: Path) -> None:
    s = Settings.from_mapping({"APPLICATION_ID": "x"})
    assert s.spool_dir is None and s.spool_max_bytes == 1024**3
    assert Settings.from_mapping({"APPLICATION_ID": "x", "SPOOL_DIR": ""}).spool_dir is None
    assert Settings.from_mapping({"APPLICATION_ID": "x", "SPOOL_DIR": tmp_path}).spool_dir == str(tmp_path)
    assert Settings.from_mapping({"APPLICATION_ID": "x", "SPOOL_DIR": "rel"}).spool_dir == os.path.abspath("rel")
    with pytest.raises(TypeError, match=r"SPOOL_DIR must be a directory path .* got int 5"):
        Settings.from_mapping({"APPLICATION_ID": "x", "SPOOL_DIR": 5})
    with pytest.raises(TypeError, match=r"SPOOL_MAX_BYTES must be an integer, got str '1G'"):
        Settings.from_mapping({"APPLICATION_ID": "x", "SPOOL_MAX_BYTES": "1G"})
    with pytest.raises(ValueError, match=r"SPOOL_MAX_BYTES must be greater than 0"):
        Settings.from_mapping({"APPLICATION_ID": "x", "SPOOL_MAX_BYTES": 0})
    with pytest.raises(ValueError, match=r"Did you mean 'SPOOL_DIR'"):
        Settings.from_mapping({"APPLICATION_ID": "x", "SPOOL_DIRECTORY": "/tmp"})


def test_snapshot_has_the_spool_counters_when_off(collector: Collector) -> None:
    agent = Agent(Settings.from_mapping({"APPLICATION_ID": "x", "BASE_URI": collector.url}), user_agent="t/1")
    try:
        snap = agent.snapshot()
        assert (snap["spooled"], snap["spool_bytes"], snap["spool_dropped"]) == (0, 0, 0)
    finally:
        agent.shutdown(1)
