"""How fast the core ships, and what ``Agent.capture`` costs the request thread.

Starts the local collector in its own process (so it does not share our GIL), then:
  1. enqueue cost: median cost of ``Agent.capture`` of a realistic capture, workers idle (a huge batch timeout);
  2. shipping rate: N captures queued, then the time until the collector has stored them all.
Prints a Markdown table. A figure, not a test:  python benchmarks/core_throughput.py [N]
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from moesif_core import Agent, BodyTap, RawCapture, Settings

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000


def start_collector(tmp: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moesif_collector", "serve", "--port", "0", "--db", os.path.join(tmp, "bench.db")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.strip().rsplit(" ", 1)[-1]
    return proc, url


def count(url: str) -> int:
    with urllib.request.urlopen(url + "/api/stats") as r:
        return int(json.load(r)["calls"])


def realistic(limit: int) -> RawCapture:
    body = json.dumps({"items": [{"id": i, "name": f"item-{i}", "price": i * 1.5} for i in range(40)]}).encode()
    req, resp = BodyTap(limit), BodyTap(limit)
    req.feed(body)
    resp.feed(body)
    token = "e30." + base64.urlsafe_b64encode(b'{"sub":"user-42"}').decode().rstrip("=") + ".sig"
    return RawCapture(
        method="POST",
        uri="http://api.local/v1/orders?expand=items",
        request_time=time.time(),
        response_time=time.time(),
        response_status=201,
        request_body=req,
        response_body=resp,
        request_headers=[
            ("HTTP_HOST", "api.local"),
            ("CONTENT_TYPE", "application/json"),
            ("HTTP_AUTHORIZATION", "Bearer " + token),
            ("HTTP_USER_AGENT", "bench"),
            ("HTTP_X_FORWARDED_FOR", "203.0.113.7"),
        ],
        wsgi_headers=True,
        response_headers=[("Content-Type", "application/json")],
        transaction_id="t-1",
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_collector(tmp)
        try:
            idle = Agent(
                Settings.from_mapping(
                    {"APPLICATION_ID": "bench", "BASE_URI": url, "BATCH_SIZE": 10**6, "EVENT_BATCH_TIMEOUT": 3600}
                ),
                user_agent="bench/1",
            )
            raw = realistic(idle.settings.max_body_size)
            idle.capture(raw)  # start the workers
            samples = []
            for _ in range(50):
                t = time.perf_counter()
                for _ in range(100):
                    idle.capture(raw)
                samples.append((time.perf_counter() - t) / 100 * 1e6)
            enqueue_us = statistics.median(samples)
            idle.shutdown(0)

            agent = Agent(
                Settings.from_mapping({"APPLICATION_ID": "bench", "BASE_URI": url, "EVENT_QUEUE_MAX_BYTES": 1 << 30}),
                user_agent="bench/1",
            )
            before = count(url)
            t0 = time.perf_counter()
            for _ in range(N):
                agent.capture(raw)
            assert agent.flush(600)
            while count(url) < before + N:
                time.sleep(0.01)
            elapsed = time.perf_counter() - t0
            snap = agent.snapshot()
        finally:
            proc.terminate()
            proc.wait()
    print("| measure | value |")
    print("|---|---|")
    print(f"| `Agent.capture` (median, workers idle) | {enqueue_us:.2f} us |")
    print(f"| events shipped per second, one process, 2 KB bodies each way | {N / elapsed:,.0f} |")
    print(f"| events sent / dropped / retried | {snap['sent']} / {snap['dropped']} / {snap['retried']} |")
    print("| originals' ceiling (docs/originals.md) | moesifasgi ~100/s, moesifdjango 12.5/s |")


if __name__ == "__main__":
    main()
