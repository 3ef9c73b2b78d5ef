"""The queue and its workers end to end, over real loopback HTTP to the real local collector."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from moesif_collector import Collector
from moesif_core import Agent, BodyTap, RawCapture, Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_agent(base_uri: str, **kw: Any) -> Agent:
    settings = Settings.from_mapping(
        {"APPLICATION_ID": "test-app", "BASE_URI": base_uri, "EVENT_BATCH_TIMEOUT": 0.05, "BATCH_SIZE": 10, **kw}
    )
    return Agent(settings, user_agent="moesif-core-tests/1")


def capture(agent: Agent, i: int, body: bytes = b'{"i": 0}') -> bool:
    tap = BodyTap(agent.settings.max_body_size)
    tap.feed(body)
    return agent.capture(
        RawCapture(
            method="POST",
            uri=f"http://app.local/items/{i}",
            request_time=time.time(),
            response_time=time.time(),
            response_status=201,
            request_body=tap,
            request_headers=[("content-type", "application/json")],
        )
    )


def uris(events: list[dict[str, Any]]) -> list[str]:
    return sorted(e["request"]["uri"] for e in events)


def test_events_arrive_once_each(collector: Collector) -> None:
    agent = make_agent(collector.url)
    try:
        for i in range(25):
            assert capture(agent, i)
        events = collector.wait_for_events(25)
        assert agent.flush(5)
        assert uris(collector.events()) == uris(
            [{"request": {"uri": f"http://app.local/items/{i}"}} for i in range(25)]
        )
        assert events[0]["request"]["body"] == {"i": 0}
        snap = agent.snapshot()
        assert snap["queued"] == 25 and snap["sent"] == 25 and snap["dropped"] == 0 and snap["pending"] == 0
        paths = {r["path"] for r in collector.requests()}
        assert {"/v1/config", "/v1/rules", "/v1/events/batch"} <= paths
    finally:
        agent.shutdown(1)


def test_collector_down_then_up_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    agent = make_agent(f"http://127.0.0.1:{port}")
    try:
        for i in range(40):
            assert capture(agent, i)
        deadline = time.monotonic() + 10
        while agent.snapshot()["retried"] < 2:  # the workers are failing and backing off
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with Collector(port=port, db_path=tmp_path / "c.db") as c:
            c.wait_for_events(40, timeout=30)
            assert agent.flush(10)
            assert len(c.events()) == 40  # nothing lost, nothing duplicated (no batch was acknowledged)
            assert len(set(uris(c.events()))) == 40
    finally:
        agent.shutdown(1)


def test_queue_bounded_in_events_drops_and_counts(tmp_path: Path, moesif_log: pytest.LogCaptureFixture) -> None:
    port = free_port()
    agent = make_agent(f"http://127.0.0.1:{port}", EVENT_QUEUE_SIZE=15, EVENT_WORKER_COUNT=1)
    try:
        kept = sum(capture(agent, i) for i in range(100))
        snap = agent.snapshot()
        # 15 in the queue plus at most one batch (10) taken by the worker before the queue filled
        assert 15 <= kept <= 25 and snap["dropped"] == 100 - kept
        assert "event queue full" in moesif_log.text
        assert sum("event queue full" in r.getMessage() for r in moesif_log.records) == 1  # not once per drop
        with Collector(port=port, db_path=tmp_path / "c.db") as c:
            c.wait_for_events(kept, timeout=30)
            assert agent.flush(10)
            assert c.count_events() == kept
    finally:
        agent.shutdown(1)


def test_queue_bounded_in_bytes(tmp_path: Path) -> None:
    port = free_port()
    agent = make_agent(f"http://127.0.0.1:{port}", EVENT_QUEUE_MAX_BYTES=200_000, EVENT_WORKER_COUNT=1, BATCH_SIZE=1)
    try:
        big = b"x" * 50_000
        kept = sum(capture(agent, i, big) for i in range(50))
        assert kept <= 6  # ~3 fit in 200 kB, plus the one the worker holds
        assert agent.snapshot()["dropped"] == 50 - kept
    finally:
        agent.shutdown(0.1)


def test_retries_500_and_honours_retry_after(collector: Collector) -> None:
    collector.set_faults("status429", retry_after=1, times=1)
    agent = make_agent(collector.url)
    try:
        capture(agent, 1)
        collector.wait_for_events(1, timeout=15)
        attempts = wait_for_attempts(collector, 2)
        assert [a["status"] for a in attempts] == [429, 201]
        t429 = next(a for a in attempts if a["status"] == 429)
        tok = next(a for a in attempts if a["status"] in (200, 201))
        assert agent.snapshot()["retried"] >= 1
        assert _seconds(tok) - _seconds(t429) >= 0.9  # waited as told
        collector.set_faults("error500", times=2)
        capture(agent, 2)
        collector.wait_for_events(2, timeout=15)
        assert agent.snapshot()["retried"] >= 3
    finally:
        agent.shutdown(1)


def wait_for_attempts(collector: Collector, n: int) -> list[dict[str, Any]]:
    """The request log is written after the response: poll it with a deadline."""
    deadline = time.monotonic() + 10
    while True:
        attempts = [r for r in collector.requests() if r["path"] == "/v1/events/batch"]
        if len(attempts) >= n or time.monotonic() > deadline:
            return attempts
        time.sleep(0.01)


def _seconds(record: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(record["received_at"]).replace("Z", "+00:00")).timestamp()


def test_hung_collector_never_blocks_capture(collector: Collector) -> None:
    collector.set_faults("hang")
    agent = make_agent(collector.url, REQUEST_TIMEOUT=30)
    try:
        capture(agent, 0)  # the worker takes it and hangs in the POST
        done = threading.Event()

        def produce() -> None:
            for i in range(1, 200):
                capture(agent, i)
            done.set()

        threading.Thread(target=produce, daemon=True).start()
        assert done.wait(5), "capture() blocked behind a hung collector"
        assert agent.snapshot()["queued"] == 200
    finally:
        collector.reset_faults()
        agent.shutdown(2)


def test_refused_batch_is_dropped_and_counted(collector: Collector, moesif_log: pytest.LogCaptureFixture) -> None:
    agent = make_agent(collector.url + "/not-the-api")  # the collector answers 404: not worth retrying
    try:
        capture(agent, 1)
        deadline = time.monotonic() + 10
        while agent.snapshot()["failed"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert "refused a batch" in moesif_log.text
        assert "test-app" not in moesif_log.text  # the application id never appears in logs
    finally:
        agent.shutdown(0.5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_dead_worker_is_restarted(collector: Collector, moesif_log: pytest.LogCaptureFixture) -> None:
    agent = make_agent(collector.url, EVENT_WORKER_COUNT=1)
    try:
        capture(agent, 0)
        collector.wait_for_events(1)
        original = agent._process
        calls = {"n": 0}

        def dying(batch: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise SystemExit("simulated thread death")
            original(batch)

        agent._process = dying  # type: ignore[method-assign]
        capture(agent, 1)
        deadline = time.monotonic() + 10
        while agent._threads[0].is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        capture(agent, 2)  # notices the dead worker and starts a new one
        collector.wait_for_events(2)
        assert "restarting" in moesif_log.text
    finally:
        agent.shutdown(1)


SCRIPT = textwrap.dedent("""
    import sys, time
    from moesif_core import Agent, RawCapture, Settings
    s = Settings.from_mapping({"APPLICATION_ID": "exit-test", "BASE_URI": sys.argv[1], "BATCH_SIZE": 100,
                               "EVENT_BATCH_TIMEOUT": 60, "EXIT_FLUSH_TIMEOUT": float(sys.argv[3])})
    a = Agent(s, user_agent="exit-test/1")
    for i in range(int(sys.argv[2])):
        a.capture(RawCapture(method="GET", uri=f"http://exit/{i}", request_time=time.time(), response_status=200))
    print("queued", flush=True)
""")


def test_exit_flushes_what_was_queued(collector: Collector, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    # a 60 s batch timeout: only the exit flush can send these in time
    proc = subprocess.run(
        [sys.executable, str(script), collector.url, "30", "5"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert collector.count_events() == 30


def test_exit_never_hangs_on_a_dead_or_hung_collector(collector: Collector, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    collector.set_faults("hang")
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script), collector.url, "30", "1"], capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 20, f"exit took {elapsed:.1f}s with a 1 s flush deadline"
    assert "not sent at exit" in proc.stderr
    collector.reset_faults()


def test_forked_child_gets_its_own_worker_and_empty_queue(collector: Collector, tmp_path: Path) -> None:
    script = tmp_path / "fork.py"
    script.write_text(
        textwrap.dedent("""
        import os, sys, time
        from moesif_core import Agent, RawCapture, Settings
        s = Settings.from_mapping({"APPLICATION_ID": "fork-test", "BASE_URI": sys.argv[1], "BATCH_SIZE": 100,
                                   "EVENT_BATCH_TIMEOUT": 0.05})
        a = Agent(s, user_agent="fork-test/1")
        def cap(tag):
            a.capture(RawCapture(method="GET", uri=f"http://fork/{tag}", request_time=time.time(),
                                 response_status=200))
        cap("parent-before")
        assert a.flush(10)
        a.settings.event_batch_timeout = 60  # queued but unsent at fork time
        cap("parent-queued")
        pid = os.fork()
        if pid == 0:
            a.settings.event_batch_timeout = 0.05
            for i in range(5):
                cap(f"child-{i}")
            ok = a.flush(10)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        cap("parent-after")
        assert a.flush(10)
    """)
    )
    proc = subprocess.run([sys.executable, str(script), collector.url], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = uris(collector.events())
    expected = sorted(
        [f"http://fork/child-{i}" for i in range(5)]
        + ["http://fork/parent-before", "http://fork/parent-queued", "http://fork/parent-after"]
    )
    assert got == expected  # the child did not re-send the parent's queued event; nothing twice


def test_debug_logging_never_prints_bodies_or_app_id(
    collector: Collector, moesif_log: pytest.LogCaptureFixture
) -> None:
    agent = make_agent(collector.url, DEBUG=True)
    try:
        capture(agent, 1, b'{"secret-body-value": 1}')
        collector.wait_for_events(1)
        agent.flush(5)
        assert "sent a batch" in moesif_log.text
        assert "secret-body-value" not in moesif_log.text and "test-app" not in moesif_log.text
    finally:
        agent.shutdown(1)
        logging.getLogger("moesif").setLevel(logging.NOTSET)


def test_flush_wakes_a_worker_that_is_backing_off(tmp_path: Path) -> None:
    port = free_port()
    agent = make_agent(f"http://127.0.0.1:{port}", EVENT_WORKER_COUNT=1)
    try:
        capture(agent, 0)
        deadline = time.monotonic() + 10
        while agent.snapshot()["retried"] < 3:  # backoff has grown past a second or two
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with Collector(port=port, db_path=tmp_path / "c.db") as c:
            assert agent.flush(5), "flush waited out the backoff instead of retrying now"
            assert c.count_events() == 1
    finally:
        agent.shutdown(0.5)


def test_after_shutdown_nothing_loops_and_captures_are_refused(collector: Collector) -> None:
    collector.set_faults("error500")
    agent = make_agent(collector.url)
    capture(agent, 0)
    wait_for_attempts(collector, 1)
    agent.shutdown(0.2)
    before = len(collector.requests())
    assert capture(agent, 1) is False and agent.snapshot()["dropped"] == 1
    time.sleep(1.0)  # a window in which a hot retry loop would show (it made 40+ requests a second)
    assert len(collector.requests()) - before <= 1


def test_one_unserialisable_event_does_not_sink_its_batch(collector: Collector) -> None:
    agent = make_agent(collector.url, BATCH_SIZE=10)
    try:
        for i in range(9):
            capture(agent, i)
        capture(agent, 9, b"[" * 1000 + b"]" * 1000)  # valid JSON nested deeper than the encoders go
        collector.wait_for_events(9)
        assert agent.flush(5)
        assert collector.count_events() in (9, 10)
        assert agent.snapshot()["failed"] <= 1
    finally:
        agent.shutdown(1)
