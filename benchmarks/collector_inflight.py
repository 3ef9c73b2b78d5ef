"""The collector's memory under concurrent large uploads: the bound on body bytes in flight (``--max-inflight``).

    python benchmarks/collector_inflight.py                           # six 45 MB events at once, defaults
    python benchmarks/collector_inflight.py --max-inflight 1          # one upload at a time
    python benchmarks/collector_inflight.py --events 4 --mb 10        # smaller

Starts ``python -m moesif_collector serve --port 0`` in its own process (127.0.0.1 only), sends ``--events`` single
events of ``--mb`` MB each at once, each on its own connection (a 503 is retried after its ``Retry-After``), and
polls the server's RSS every 10 ms. Prints the RSS before, the peak, the answers and the wall time. Issue 18 measured
917 MB peak for six 45 MB events before the bound; with the default 100 MiB bound: 388 MB. Figures, not tests.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HEADERS = {"Content-Type": "application/json", "X-Moesif-Application-Id": "inflight-bench"}


def event_of(megabytes: int) -> bytes:
    body = "x" * (megabytes * 1024 * 1024)
    event = {
        "request": {"time": "2026-12-02T08:00:00.000", "uri": "http://h/upload", "verb": "POST", "body": body},
        "response": {"time": "2026-12-02T08:00:00.010", "status": 201},
    }
    return json.dumps(event).encode()


def send(port: int, body: bytes, answers: list[int]) -> None:
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            conn.request("POST", "/v1/events", body, HEADERS)
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        answers.append(response.status)
        if response.status != 503:
            return
        time.sleep(float(response.getheader("Retry-After") or 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=6)
    parser.add_argument("--mb", type=int, default=45)
    parser.add_argument("--max-inflight", type=int, help="passed to serve (default: serve's own, 100 MiB)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inflight-bench-") as tmp:
        command = [sys.executable, "-m", "moesif_collector", "serve", "--port", "0", "--db", str(Path(tmp) / "c.db")]
        if args.max_inflight is not None:
            command += ["--max-inflight", str(args.max_inflight)]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
            process = psutil.Process(server.pid)
            before = peak = process.memory_info().rss
            body = event_of(args.mb)
            answers: list[int] = []
            done = threading.Event()

            def watch() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, process.memory_info().rss)
                    time.sleep(0.01)

            watcher = threading.Thread(target=watch)
            watcher.start()
            started = time.monotonic()
            senders = [threading.Thread(target=send, args=(port, body, answers)) for _ in range(args.events)]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join()
            elapsed = time.monotonic() - started
            done.set()
            watcher.join()
        finally:
            server.terminate()
            server.wait(10)
    bound = "default" if args.max_inflight is None else str(args.max_inflight)
    print(
        f"{args.events} x {args.mb} MB events, --max-inflight {bound}: RSS {before / 2**20:.0f} MB -> peak"
        f" {peak / 2**20:.0f} MB; answers {sorted(answers)}; {elapsed:.1f} s"
    )


if __name__ == "__main__":
    main()
