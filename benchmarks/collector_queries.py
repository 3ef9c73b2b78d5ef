"""How fast the collector's page answers on a big database: every JSON request the page makes, timed.

Fills a database with N events (default 100,000) spread over the last 24 hours (numeric, UUID and hex ids in the
paths, 60 users in 12 companies, their profiles and subscriptions), starts ``moesif_collector serve`` on it in its
own process, and times each request the page sends (the calls table, totals, chart, routes, users, companies, config;
unfiltered and filtered) over keep-alive HTTP on 127.0.0.1. Prints a Markdown table of the median and worst of
``--runs`` runs per request. The target is every median under 200 ms at 100,000 events. A figure, not a test:

    python benchmarks/collector_queries.py                  # fills a temp database (about a minute), then measures
    python benchmarks/collector_queries.py --db /tmp/q.db   # keeps the filled database for the next run
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from moesif_collector.storage import Storage
from moesif_collector.timefmt import format_time, utc_now

ROUTES = [
    ("GET", "/api/items/{n}", 0.30),
    ("GET", "/api/items", 0.15),
    ("POST", "/api/items", 0.08),
    ("PUT", "/api/items/{n}", 0.05),
    ("GET", "/api/users/{uuid}", 0.12),
    ("GET", "/api/orders/{hex}", 0.10),
    ("POST", "/api/orders", 0.07),
    ("GET", "/api/search", 0.08),
    ("GET", "/health", 0.05),
]


def fake_event(rng: random.Random, now: Any) -> dict[str, Any]:
    """One ~700-byte event somewhere in the last 24 hours."""
    verb, pattern, _ = rng.choices(ROUTES, weights=[w for _, _, w in ROUTES])[0]
    path = (
        pattern.replace("{n}", str(rng.randint(1, 5000)))
        .replace("{uuid}", str(uuid.UUID(int=rng.getrandbits(128))))
        .replace("{hex}", f"{rng.getrandbits(96):024x}")
    )
    started = now - timedelta(seconds=rng.uniform(0, 86400))
    duration = rng.lognormvariate(3.0, 0.8)
    roll = rng.random()
    status = 500 if roll < 0.02 else 404 if roll < 0.07 else 201 if verb == "POST" else 200
    user = rng.randint(0, 59)
    return {
        "request": {
            "time": format_time(started),
            "uri": f"https://api.example.com{path}?page={rng.randint(1, 5)}",
            "verb": verb,
            "ip_address": "192.0.2.7",
            "headers": {"Host": "api.example.com", "User-Agent": "bench/1.0", "Accept": "application/json"},
            "body": {"q": "x" * 40} if verb in ("POST", "PUT") else None,
            "transfer_encoding": "json" if verb in ("POST", "PUT") else None,
        },
        "response": {
            "time": format_time(started + timedelta(milliseconds=duration)),
            "status": status,
            "headers": {"Content-Type": "application/json"},
            "body": {"id": rng.randint(1, 9999), "ok": status < 400},
            "transfer_encoding": "json",
        },
        "user_id": f"user-{user}",
        "company_id": f"company-{user % 12}",
        "direction": "Incoming",
        "weight": 1,
    }


def fill(db: str, count: int) -> None:
    storage = Storage(db)
    try:
        have = storage.count_events()
        if have >= count:
            print(f"using {db}: {have} events already stored", file=sys.stderr)
            return
        rng = random.Random(20)
        now = utc_now()
        started = time.monotonic()
        for done in range(have, count, 2000):
            storage.insert_events([fake_event(rng, now) for _ in range(min(2000, count - done))])
        storage.upsert_profiles(
            "users",
            [
                {"user_id": f"user-{i}", "company_id": f"company-{i % 12}", "metadata": {"plan": "pro", "n": i}}
                for i in range(60)
            ],
        )
        storage.upsert_profiles(
            "companies", [{"company_id": f"company-{i}", "metadata": {"size": i * 10}} for i in range(12)]
        )
        storage.upsert_profiles(
            "subscriptions",
            [{"subscription_id": f"sub-{i}", "company_id": f"company-{i}", "status": "active"} for i in range(12)],
        )
        print(f"filled {db} with {count - have} events in {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        storage.close()


def serve(db: str, tmp: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "moesif_collector",
            "serve",
            "--port",
            "0",
            "--db",
            db,
            "--config-file",
            os.path.join(tmp, "c.json"),
            "--rules-file",
            os.path.join(tmp, "r.json"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    return proc, url


def requests_of_the_page(oldest_page_id: int) -> list[tuple[str, str]]:
    route = "route=" + quote("/api/items/{id}") + "&verb=GET"
    return [
        ("calls table, newest 100", "/api/calls?limit=100"),
        ("calls table, an older page", f"/api/calls?limit=100&before_id={oldest_page_id}"),
        ("calls table, path contains", "/api/calls?limit=100&path=orders"),
        ("calls table, user + 5xx", "/api/calls?limit=100&user_id=user-7&status=5xx"),
        ("totals (stats)", "/api/stats"),
        ("totals without routes (the page)", "/api/stats?routes=0"),
        ("totals, filtered by route", f"/api/stats?{route}"),
        ("chart, 1 h", "/api/timeseries?window=1h"),
        ("chart, 24 h", "/api/timeseries?window=24h"),
        ("chart, 24 h, one route", f"/api/timeseries?window=24h&{route}"),
        ("chart, 24 h, path contains", "/api/timeseries?window=24h&path=orders"),
        ("totals, path contains", "/api/stats?routes=0&path=orders"),
        ("routes table, path contains", "/api/routes?path=orders"),
        ("routes table, one user", "/api/routes?user_id=user-7"),
        ("routes table", "/api/routes"),
        ("routes table, sorted by p95", "/api/routes?sort=p95"),
        ("users", "/api/users"),
        ("users, filtered by company", "/api/users?company_id=company-3"),
        ("users, filtered by route", f"/api/users?{route}"),
        ("companies", "/api/companies"),
        ("config", "/api/config"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--db", help="database to fill (once) and measure; default: a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="collector-queries-") as tmp:
        db = args.db or os.path.join(tmp, "bench.db")
        fill(db, args.events)
        proc, url = serve(db, tmp)
        try:
            host, port = url.split("//", 1)[1].rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=60)

            def get(path: str) -> tuple[float, bytes]:
                begin = time.perf_counter()
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                elapsed = (time.perf_counter() - begin) * 1000
                assert response.status == 200, (path, response.status, body[:200])
                return elapsed, body

            total = json.loads(get("/api/stats")[1])["calls"]
            middle = json.loads(get(f"/api/calls?limit=1&before_id={total // 2}")[1])["calls"][0]["id"]
            lines = [
                f"{total} events; {args.runs} runs per request after one warm-up; load average"
                f" {os.getloadavg()[0]:.2f} at start",
                "",
                "| request | path | median ms | worst ms | bytes |",
                "|---|---|---:|---:|---:|",
            ]
            for name, path in requests_of_the_page(middle):
                get(path)
                times = []
                size = 0
                for _ in range(args.runs):
                    elapsed, body = get(path)
                    times.append(elapsed)
                    size = len(body)
                lines.append(f"| {name} | `{path}` | {statistics.median(times):.1f} | {max(times):.1f} | {size} |")
            conn.close()
            print("\n".join(lines))
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
