"""Process faults, per adapter: a process that served ``k`` requests and exits normally delivers all ``k`` events
(through the exit flush alone), and with a hung collector it still exits within ``EXIT_FLUSH_TIMEOUT`` plus a margin.

(Fork after start, gunicorn ``--preload`` with 2 workers, is covered by ``tests/wsgi/test_wsgi_servers.py``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Tuple

import pytest
from rel_support import KINDS, ids_for

SCRIPT = Path(__file__).resolve().parent / "rel_exit_app.py"
K = 7
EXIT_FLUSH = 2.0
MARGIN = 4.0  # interpreter teardown on a busy machine; the bound that matters is that it is not REQUEST_TIMEOUT


def run_app(kind: str, base_uri: str, **settings: Any) -> Tuple[int, float, str]:
    """Run the app; returns (exit code, seconds from ``SERVED`` to exit, stderr)."""
    env = dict(os.environ, REL_SETTINGS=json.dumps(settings), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), kind, base_uri, str(K)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()  # blocks until the app printed it (or died: then the line is empty)
        served_at = time.monotonic()
        try:
            proc.wait(EXIT_FLUSH + MARGIN + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise
        took = time.monotonic() - served_at
        err = proc.stderr.read()
        assert line.strip() == "SERVED", (line, err[-3000:])
        return proc.returncode, took, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


@pytest.mark.parametrize("kind", KINDS)
def test_exit_flush_delivers_everything(kind: str, collector: Any) -> None:
    # a long batch timeout and a big batch: only the exit flush can send these
    code, _, err = run_app(kind, collector.url, EVENT_BATCH_TIMEOUT=60, BATCH_SIZE=100, EXIT_FLUSH_TIMEOUT=10)
    assert code == 0, err[-3000:]
    seen = ids_for(collector.events(), "exit")  # no waiting: the process flushed before it exited
    assert seen == {i: 1 for i in range(K)}, (seen, err[-3000:])


@pytest.mark.parametrize("kind", KINDS)
def test_exit_with_hung_collector_is_bounded(kind: str, collector: Any) -> None:
    collector.set_faults("hang")
    code, took, err = run_app(
        kind, collector.url, EVENT_BATCH_TIMEOUT=60, BATCH_SIZE=100, EXIT_FLUSH_TIMEOUT=EXIT_FLUSH, REQUEST_TIMEOUT=30
    )
    assert code == 0, err[-3000:]
    assert took < EXIT_FLUSH + MARGIN, f"exit took {took:.2f}s"
    assert "not sent at exit" in err, err[-3000:]
    assert collector.count_events() == 0
