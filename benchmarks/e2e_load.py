"""End to end under real servers: requests per second and latency, bare against wrapped with our middleware.

    python benchmarks/e2e_load.py                                  # about 1-3 minutes
    python benchmarks/e2e_load.py --requests 600 --time-cap 5      # smoke run

Flask under gunicorn (2 sync workers) and FastAPI under uvicorn (2 workers), the apps of ``e2e_apps.py``: the
trivial ``GET /hello`` and the realistic ``POST /orders`` (a ~2 KB JSON body and an ``Authorization: Bearer``
header, echoed back with a status added). Each app is started bare and wrapped (``E2E_VARIANT``); the wrapped one
ships to a local collector (``python -m moesif_collector serve --port 0``) in its own process.

Load: ``--clients`` processes, each with one keep-alive ``http.client`` connection (gunicorn's sync workers close
after every answer; the client then reconnects), send ``--requests`` requests in all per cell (framework, route,
variant) after ``--warmup`` untimed ones, stopping at ``--time-cap`` seconds. Throughput is the completed requests
over the wall time from the first client's start to the last client's end; latency is per request, client side.
After each wrapped server's load, the collector's event count is polled (with a deadline) until every request sent
to it (warm-up included) is stored.

Only 127.0.0.1 is used. Servers are stopped by their PID (SIGTERM to the master, SIGKILL after a deadline). Prints
one Markdown section. Figures, not tests: nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROUTES = ("trivial", "realistic")
FRAMEWORKS = ("flask", "fastapi")
TITLES = {"flask": "Flask, gunicorn 2 sync workers", "fastapi": "FastAPI, uvicorn 2 workers"}
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIiwibmFtZSI6IkJlbmNoIFVzZXIiLCJpYXQiOjE1MTYy"
    "MzkwMjJ9.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"
)


def _order_body() -> bytes:
    items: List[Dict[str, Any]] = []
    body = b""
    while len(body) < 2048 - 64:
        i = len(items)
        items.append({"sku": f"SKU-{i:04d}", "name": f"item number {i}", "qty": i % 5 + 1, "price": i * 1.25})
        body = json.dumps({"order_id": "ord-1001", "customer": "user-42", "items": items}).encode()
    return body


BODY = _order_body()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the collector and the servers ---------------------------------------------------------------------------------


def start_collector(tmp: str) -> Tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moesif_collector", "serve", "--port", "0", "--db", os.path.join(tmp, "e2e.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the first line: "moesif-collector listening on URL"
    if "listening on" not in line:
        stop(proc)
        raise SystemExit(f"the collector did not start: {line!r}")
    return proc, line.strip().rsplit(" ", 1)[-1]


def collector_events(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_admin/health", timeout=10) as resp:  # loopback URL only
        return int(json.loads(resp.read())["events"])


def start_server(framework: str, variant: str, port: int, base_uri: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, E2E_VARIANT=variant, E2E_BASE_URI=base_uri, PYTHONDONTWRITEBYTECODE="1")
    if framework == "flask":
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(HERE),
            "--log-level",
            "warning",
            "e2e_apps:flask_app",
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--app-dir",
            str(HERE),
            "--log-level",
            "warning",
            "--no-access-log",
            "e2e_apps:asgi_app",
        ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(proc: subprocess.Popen[Any], port: int, deadline_s: float = 30.0) -> None:
    """Poll ``GET /hello`` until it answers 200; the process must not exit meanwhile."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            raise SystemExit(f"the server exited ({proc.returncode}) before answering:\n{err}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/hello")
            ok = conn.getresponse().status == 200
            conn.close()
            if ok:
                return
        except OSError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise SystemExit(f"the server on port {port} was not ready within {deadline_s:.0f} s")


def stop(proc: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """SIGTERM to this PID (gunicorn's / uvicorn's master stops its workers), SIGKILL if it outlives ``grace``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


# -- the load generator --------------------------------------------------------------------------------------------


def _request(route: str) -> Tuple[str, str, Optional[bytes], Dict[str, str]]:
    headers = {"Accept": "application/json", "User-Agent": "e2e-bench/1.0"}
    if route == "trivial":
        return "GET", "/hello?a=1", None, headers
    headers.update({"Content-Type": "application/json", "Authorization": f"Bearer {JWT}"})
    return "POST", "/orders", BODY, headers


def _client(port: int, route: str, count: int, warmup: int, time_cap: float, go: Any, out: Any) -> None:
    method, path, body, headers = _request(route)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    errors = 0

    def one() -> bool:
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()  # the next request reconnects
            return False

    sent = 0
    for _ in range(warmup):
        sent += 1
        one()
    go.wait()
    lat: List[float] = []
    perf = time.perf_counter
    start = time.monotonic()
    deadline = start + time_cap
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        t0 = perf()
        ok = one()
        sent += 1
        if ok:
            lat.append(perf() - t0)
        else:
            errors += 1
    end = time.monotonic()
    conn.close()
    out.put({"lat": lat, "errors": errors, "start": start, "end": end, "sent": sent})


def load(port: int, route: str, total: int, clients: int, warmup: int, time_cap: float) -> Dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    out = ctx.Queue()
    per = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    procs = [ctx.Process(target=_client, args=(port, route, n, warmup, time_cap, go, out)) for n in per]
    for p in procs:
        p.start()
    go.set()  # each client starts its timed requests after its own warm-up (CLOCK_MONOTONIC is system-wide)
    results = [out.get(timeout=time_cap + 120) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    lat = sorted(x for r in results for x in r["lat"])
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    res: Dict[str, Any] = {
        "n": len(lat),
        "errors": sum(r["errors"] for r in results),
        "sent": sum(r["sent"] for r in results),
        "wall": wall,
        "capped": len(lat) + sum(r["errors"] for r in results) < total,
    }
    if lat:
        res.update(
            rps=len(lat) / wall if wall > 0 else 0.0,
            p50=statistics.median(lat),
            p99=lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        )
    return res


# -- one run -------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> str:
    started = time.monotonic()
    load_start = os.getloadavg()
    results: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
    shipped: Dict[str, Tuple[int, int]] = {}  # framework -> (events stored, requests sent to the wrapped server)
    with tempfile.TemporaryDirectory() as tmp:
        collector, url = start_collector(tmp)
        try:
            for fw in FRAMEWORKS:
                for variant in ("bare", "wrapped"):
                    port = free_port()
                    before = collector_events(url)
                    print(
                        f"[{time.monotonic() - started:5.0f} s] {fw} {variant}: starting on port {port}",
                        file=sys.stderr,
                        flush=True,
                    )
                    server = start_server(fw, variant, port, url)
                    try:
                        wait_ready(server, port)
                        sent = 1  # the readiness probe that succeeded (failed ones never reached the app)
                        for route in ROUTES:
                            r = load(port, route, args.requests, args.clients, args.warmup, args.time_cap)
                            results[(fw, route, variant)] = r
                            sent += r["sent"]
                            print(
                                f"[{time.monotonic() - started:5.0f} s]   {route}: {r.get('rps', 0):,.0f} req/s "
                                f"({r['n']} ok, {r['errors']} errors)",
                                file=sys.stderr,
                                flush=True,
                            )
                        if variant == "wrapped":
                            deadline = time.monotonic() + args.ship_deadline
                            got = collector_events(url) - before
                            while got < sent and time.monotonic() < deadline:
                                time.sleep(0.2)
                                got = collector_events(url) - before
                            shipped[fw] = (got, sent)
                    finally:
                        stop(server)
        finally:
            stop(collector)
    return render(args, results, shipped, time.monotonic() - started, load_start, os.getloadavg())


def _ms(r: Dict[str, Any], key: str) -> str:
    return f"{r[key] * 1e3:.2f} ms" if key in r else "n/a"


def render(
    args: argparse.Namespace,
    results: Dict[Tuple[str, str, str], Dict[str, Any]],
    shipped: Dict[str, Tuple[int, int]],
    elapsed: float,
    load_start: Tuple[float, ...],
    load_end: Tuple[float, ...],
) -> str:
    vs = {name: version(name) for name in ("flask", "fastapi", "gunicorn", "uvicorn")}
    lines = [
        "## End to end under real servers (e2e_load.py)",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} cores, "
        f"load average at start {'/'.join(f'{x:.2f}' for x in load_start)}, at end "
        f"{'/'.join(f'{x:.2f}' for x in load_end)}",
        f"- Flask {vs['flask']} under gunicorn {vs['gunicorn']} (2 sync workers), FastAPI {vs['fastapi']} under "
        f"uvicorn {vs['uvicorn']} (2 workers); wrapped = `moesifwsgi` / `moesifasgi` shipping to a loopback "
        "collector in its own process",
        f"- load: {args.clients} client processes on 127.0.0.1, one keep-alive `http.client` connection each "
        f"(gunicorn's sync workers close after each answer), {args.requests} timed requests per cell after "
        f"{args.warmup} warm-up ones per client, capped at {args.time_cap:.0f} s per cell; the servers, the clients "
        f"and the collector share the same {os.cpu_count()} cores, so these are relative figures (the wrapped cells "
        "also pay for the collector's own ingest CPU, which a real deployment does not)",
        "- uvicorn workers get `TCP_NODELAY` set by `e2e_apps.py` as one-worker uvicorn does (with `--workers` "
        "asyncio skips it and every keep-alive request waits ~40 ms, bare and wrapped alike)",
        f"- took {elapsed:.0f} s",
        "",
        "| framework | route | bare req/s | wrapped req/s | ratio | bare p50 | wrapped p50 | bare p99 | wrapped p99 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes: List[str] = []
    for fw in FRAMEWORKS:
        for route in ROUTES:
            b, w = results.get((fw, route, "bare"), {}), results.get((fw, route, "wrapped"), {})
            for variant, r in (("bare", b), ("wrapped", w)):
                if r.get("errors") or r.get("capped"):
                    notes.append(
                        f"{TITLES[fw]}, {route}, {variant}: {r.get('n', 0)} ok, {r.get('errors', 0)} "
                        f"errors{' (stopped at the time cap)' if r.get('capped') else ''}"
                    )
            ratio = f"{w['rps'] / b['rps']:.2f}" if b.get("rps") and w.get("rps") else "n/a"
            lines.append(
                f"| {TITLES[fw]} | {route} | {b.get('rps', 0):,.0f} | {w.get('rps', 0):,.0f} | {ratio} "
                f"| {_ms(b, 'p50')} | {_ms(w, 'p50')} | {_ms(b, 'p99')} | {_ms(w, 'p99')} |"
            )
    lines += [
        "",
        "Ratio = wrapped req/s over bare req/s (1.00 = no cost). Events the collector stored from each "
        "wrapped server (every request sent to it, warm-up included, should be there):",
        "",
    ]
    for fw in FRAMEWORKS:
        if fw in shipped:
            got, sent = shipped[fw]
            lines.append(
                f"- {TITLES[fw]}: {got} events stored for {sent} requests sent"
                f"{'' if got >= sent else ' (MISSING EVENTS at the deadline)'}"
            )
    if notes:
        lines += ["", "Incomplete cells:", ""] + [f"- {n}" for n in notes]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per cell, all clients together")
    parser.add_argument("--clients", type=int, default=4, help="load generator processes")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per client before each cell")
    parser.add_argument("--time-cap", type=float, default=20.0, help="seconds per cell at most")
    parser.add_argument(
        "--ship-deadline",
        type=float,
        default=30.0,
        help="seconds to wait for a wrapped server's events to reach the collector",
    )
    args = parser.parse_args()
    print(run(args))


if __name__ == "__main__":
    main()
