"""Measure how many events per second the collector stores from several concurrent senders.

Starts ``python -m moesif_collector serve --port 0`` on a temporary database (or uses ``--url``), then
``--processes`` sender processes each post ``--batches`` gzip batches of ``--batch-size`` realistic events
(about 1 KiB of JSON each) over loopback with keep-alive, all at once. Payloads are built and compressed
before the clock starts, so the figure is the collector's (receive, inflate, parse, validate, store in
SQLite), not the senders'. A 201 means the batch is committed, so the clock stops at the last answer;
the stored count is then checked to be exact.

    python benchmarks/collector_ingest.py [--processes 4] [--batches 50] [--batch-size 100]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from moesif_collector.loadgen import Sender, encode_body, sample_event


def _worker(url: str, seed: int, batches: int, batch_size: int, ready: Any, go: Any, results: Any) -> None:
    """Build the payloads, wait for the start signal, post them; puts (events accepted, batches failed)."""
    rng = random.Random(seed)
    bodies = [
        [sample_event(seed * 10_000_000 + b * batch_size + i, rng) for i in range(batch_size)] for b in range(batches)
    ]
    sender = Sender(url, app_id="bench")
    encoded = [encode_body(batch) for batch in bodies]
    ready.release()
    go.wait()
    accepted = failed = 0
    for body in encoded:
        status, _, _ = sender.post_raw("/v1/events/batch", body)
        if status == 201:
            accepted += batch_size
        else:
            failed += 1
    sender.close()
    results.put((accepted, failed))


def _start_server(db: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moesif_collector", "serve", "--port", "0", "--db", db],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    prefix = "moesif-collector listening on "
    if not line.startswith(prefix):
        proc.kill()
        raise SystemExit(f"collector did not start: {line!r}")
    return proc, line[len(prefix) :]


def main() -> int:
    """Run the benchmark and print the figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--batches", type=int, default=50, help="batches per process")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--url", help="an already running collector (default: start one on a temp database)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="collector-bench-")
    proc = None
    url = args.url
    if url is None:
        proc, url = _start_server(os.path.join(tmp, "bench.db"))
    try:
        before = _count(url)
        ctx = multiprocessing.get_context("spawn")
        ready, go, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
        workers = [
            ctx.Process(target=_worker, args=(url, seed, args.batches, args.batch_size, ready, go, results))
            for seed in range(args.processes)
        ]
        for worker in workers:
            worker.start()
        for _ in workers:
            if not ready.acquire(timeout=120):
                raise SystemExit("a sender process did not get ready")
        started = time.perf_counter()
        go.set()
        outcome = [results.get(timeout=600) for _ in workers]
        elapsed = time.perf_counter() - started
        for worker in workers:
            worker.join(timeout=30)
        accepted = sum(a for a, _ in outcome)
        failed = sum(f for _, f in outcome)
        stored = _count(url) - before
        total = args.processes * args.batches * args.batch_size
        print(
            json.dumps(
                {
                    "processes": args.processes,
                    "batches_per_process": args.batches,
                    "batch_size": args.batch_size,
                    "events_sent": total,
                    "events_accepted": accepted,
                    "events_stored": stored,
                    "failed_batches": failed,
                    "seconds": round(elapsed, 3),
                    "events_per_second": round(accepted / elapsed),
                }
            )
        )
        return 0 if stored == accepted == total else 1
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


def _count(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_admin/health", timeout=30) as resp:
        return int(json.loads(resp.read())["events"])


if __name__ == "__main__":
    sys.exit(main())
