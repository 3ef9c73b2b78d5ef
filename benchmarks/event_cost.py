"""The whole cost of a captured event, per adapter, ours against the original from PyPI, in one run.

    python benchmarks/event_cost.py                        # about 15 minutes on 2 busy cores
    python benchmarks/event_cost.py --requests 2000 --repeats 1 --queued 5000   # smoke run
    python benchmarks/event_cost.py --save-baseline        # also keep these figures as the "before" column

What a user's server pays for each event, counted in the app's own process (request thread, the SDK's worker
threads and its HTTP client alike), for Flask (WSGI), Starlette (ASGI), Django and Tornado, each with our adapter
and the original (``/tmp/bench-orig-*`` venvs, made on first use by the per-framework scripts), on the two routes
of ``run_all.py`` (trivial ``GET /hello``; ``POST /orders`` with 2 KB of JSON each way and a Bearer JWT):

- **SDK CPU per event**: process CPU (``time.process_time``: every thread) of ``--requests`` wrapped requests
  *until the collector holds every event of them*, minus the process CPU of as many bare requests, over the number
  of requests. Split into the request thread's share (``time.thread_time``) and the rest (worker, client).
- **events/s shipped** and **lag**: requests over the time from the first request of the burst until the
  collector holds the last event; the lag is the time from the burst's last request to that moment. An original
  that ships at a fixed cadence (25 events per 2 s, 100 per 1 s) is given ``--lag-budget`` seconds; its figures
  then count what it shipped in that time and say so.
- **request path, collector down**: median wall time added to a request (wrapped minus bare, alternating
  blocks), the collector a closed port, so no worker has anything to send.
- **worst pause**: the collector down, ``--queued`` trivial requests are captured and queued; the longest wall time
  of any of them and of 2,000 more, next to the bare app's longest over as many requests and one full
  ``gc.collect()`` of the bare process (what the app pays anyway), and a full ``gc.collect()`` with the queue full.
- **bytes per queued capture**: ``tracemalloc``'s traced memory growth over 5,000 more queued trivial captures.

The collector is a stub in its own process that parses each batch, counts its events and discards them (it
answers ``/v1/config`` with a sample-everything config and ``/v1/rules`` with ``[]``), so the figures are the
SDK's and not a database's. With ``--profile`` (the default) a yappi CPU profile over every thread of our Flask
process on both routes gives the top entries by own time.

Prints a Markdown section and writes it into ``benchmarks/RESULTS.md`` between ``<!-- event_cost -->`` markers
(``run_all.py`` includes it in its report). Medians over ``--repeats`` alternating blocks; the machine is shared, so
the load average is reported and ratios within one run are what to read. Figures, not tests.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import gzip
import http.server
import json
import os
import platform
import socketserver
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run_all  # noqa: E402  (imports only the standard library and its sibling scripts at top level)

FRAMEWORKS = run_all.FRAMEWORKS
TITLES = run_all.TITLES
ORIGINALS = run_all.ORIGINALS
ROUTES = run_all.ROUTES
BASELINE = HERE / "event_cost_baseline.json"
BEGIN, END = "<!-- event_cost -->", "<!-- /event_cost -->"

CONFIG = {
    "org_id": "bench",
    "app_id": "bench",
    "sample_rate": 100,
    "user_sample_rate": {},
    "company_sample_rate": {},
    "regex_config": [],
    "user_rules": {},
    "company_rules": {},
    "ip_addresses_blocked_by_name": {},
    "billing_config_jsons": {},
}


# -- the stub collector (its own process) ----------------------------------------------------------------------------


class _Stub:
    def __init__(self) -> None:
        self.events = 0
        self.batches = 0
        #: (events after this batch, monotonic time it arrived); CLOCK_MONOTONIC is one clock for all processes
        self.arrivals: List[Tuple[int, float]] = []
        self.cond = threading.Condition()

    def add(self, n: int) -> None:
        with self.cond:
            self.events += n
            self.batches += 1
            self.arrivals.append((self.events, time.monotonic()))
            self.cond.notify_all()

    def wait(self, target: int, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.events < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            reached = next((t for n, t in self.arrivals if n >= target), None)
            return {"events": self.events, "reached": reached, "batches": self.batches}


def serve_stub() -> None:
    stub = _Stub()
    config = json.dumps(CONFIG).encode()
    try:
        import orjson

        parse: Callable[[bytes], Any] = orjson.loads
    except ImportError:
        parse = json.loads

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go in two writes: without TCP_NODELAY the second waits for the client's delayed ACK
        # (40 ms a batch), which would be the stub's cost, not the SDK's
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, extra: Optional[Dict[str, str]] = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/v1/config":
                self._answer(200, config, {"X-Moesif-Config-ETag": "bench-etag"})
            elif path == "/v1/rules":
                self._answer(200, b"[]")
            elif path == "/_stub/wait":
                args = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                result = stub.wait(int(args.get("n", "0")), float(args.get("timeout", "0")))
                self._answer(200, json.dumps(result).encode())
            else:
                self._answer(404, b"{}")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            if self.path.startswith("/v1/events"):
                try:
                    data = parse(body)
                    stub.add(len(data) if isinstance(data, list) else 1)
                except ValueError:
                    self._answer(400, b"{}")
                    return
            self._answer(201, b"{}", {"X-Moesif-Config-ETag": "bench-etag"})

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        request_queue_size = 128

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a child that exits drops its kept-alive connections: not an error here

    server = Server(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


def start_stub() -> Tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, __file__, "--stub"], stdout=subprocess.PIPE, text=True, env=run_all._env())
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def stub_wait(url: str, target: int, timeout: float) -> Dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_stub/wait?n={target}&timeout={timeout}", timeout=timeout + 30) as r:
        return dict(json.loads(r.read()))


# -- children ------------------------------------------------------------------------------------------------------


class _Runner:
    """Runs blocks of one call, sync or async, on one event loop for the child's life."""

    def __init__(self, loop: Optional[asyncio.AbstractEventLoop]) -> None:
        self.loop = loop

    def block(self, fn: Callable[[], Any], n: int, times: Optional[List[int]] = None) -> None:
        perf = time.perf_counter_ns
        if self.loop is None:
            if times is None:
                for _ in range(n):
                    fn()
            else:
                for _ in range(n):
                    t0 = perf()
                    fn()
                    times.append(perf() - t0)
            return

        async def run() -> None:
            if times is None:
                for _ in range(n):
                    await fn()
            else:
                for _ in range(n):
                    t0 = perf()
                    await fn()
                    times.append(perf() - t0)

        self.loop.run_until_complete(run())

    def wait(self, url: str, target: int, timeout: float) -> Dict[str, Any]:
        """Wait for the stub off the event loop (an original may ship from the loop)."""
        if self.loop is None:
            return stub_wait(url, target, timeout)
        return self.loop.run_until_complete(self.loop.run_in_executor(None, stub_wait, url, target, timeout))


def _calls(framework: str, impl: str, uri: str) -> Tuple[Dict[str, Callable[[], Any]], str, _Runner]:
    """The four calls of ``run_all`` (route x bare/wrapped) and a runner for them; an async framework's apps are
    built on the loop that will run them (as ``run_all`` does)."""
    builder, is_async = run_all.BUILDERS[framework]
    if not is_async:
        calls, version = builder(impl, uri)
        return calls, version, _Runner(None)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def build() -> Tuple[Dict[str, Callable[[], Any]], str]:
        return builder(impl, uri)

    calls, version = loop.run_until_complete(build())
    return calls, version, _Runner(loop)


def child_cost(framework: str, impl: str, url: str, n: int, repeats: int, lag_budget: float) -> Dict[str, Any]:
    calls, version, run = _calls(framework, impl, url)
    expected = 0
    for key in ("trivial/bare", "realistic/bare", "trivial/wrapped", "realistic/wrapped"):
        run.block(calls[key], 300)
        if key.endswith("wrapped"):
            expected += 300
    warm = run.wait(url, expected, lag_budget)
    expected = warm["events"]  # an original with a fixed cadence has not shipped them all: count from here
    out: Dict[str, Any] = {"version": version, "routes": {}}
    for route in ROUTES:
        rows: List[Dict[str, float]] = []
        for r in range(repeats):
            row: Dict[str, float] = {}
            for variant in ("bare", "wrapped") if r % 2 == 0 else ("wrapped", "bare"):
                fn = calls[f"{route}/{variant}"]
                times: List[int] = []
                gc.collect()
                cpu0, thr0, t0 = time.process_time(), time.thread_time(), time.monotonic()
                run.block(fn, n, times)
                t_end, thr1 = time.monotonic(), time.thread_time()
                if variant == "wrapped":
                    got = run.wait(url, expected + n, lag_budget)
                    cpu1 = time.process_time()
                    shipped = got["events"] - expected
                    expected = got["events"]
                    reached = got["reached"] if got["reached"] is not None else time.monotonic()
                    row["shipped"] = shipped
                    row["lag_s"] = max(0.0, reached - t_end)
                    row["ship_rate"] = shipped / max(1e-9, reached - t0)
                else:
                    cpu1 = time.process_time()
                row[f"{variant}_cpu_us"] = (cpu1 - cpu0) / n * 1e6
                row[f"{variant}_thread_us"] = (thr1 - thr0) / n * 1e6
                row[f"{variant}_median_us"] = statistics.median(times) / 1000
            row["sdk_cpu_us"] = row["wrapped_cpu_us"] - row["bare_cpu_us"]
            row["request_thread_us"] = row["wrapped_thread_us"] - row["bare_thread_us"]
            row["added_up_us"] = row["wrapped_median_us"] - row["bare_median_us"]
            rows.append(row)
        out["routes"][route] = {k: statistics.median(row[k] for row in rows) for k in rows[0]} | {
            "all_sdk_cpu_us": [round(row["sdk_cpu_us"], 1) for row in rows],
            "min_shipped": min(row["shipped"] for row in rows),
            "requests": n,
        }
    return out


def child_down(framework: str, impl: str, uri: str, n: int, repeats: int) -> Dict[str, Any]:
    """The collector down: what a request pays on its own thread (no worker has anything to send)."""
    calls, version, run = _calls(framework, impl, uri)
    for fn in calls.values():
        run.block(fn, 300)
    out: Dict[str, Any] = {}
    for route in ROUTES:
        times: Dict[str, List[int]] = {"bare": [], "wrapped": []}
        thread: Dict[str, float] = {"bare": 0.0, "wrapped": 0.0}
        for r in range(repeats * 2):
            for variant in ("bare", "wrapped") if r % 2 == 0 else ("wrapped", "bare"):
                t0 = time.thread_time()
                run.block(calls[f"{route}/{variant}"], n // 2, times[variant])
                thread[variant] += time.thread_time() - t0
        med = {v: statistics.median(t) / 1000 for v, t in times.items()}
        out[route] = {
            "bare_median_us": med["bare"],
            "wrapped_median_us": med["wrapped"],
            "added_us": med["wrapped"] - med["bare"],
            "thread_added_us": (thread["wrapped"] - thread["bare"]) / (n * repeats) * 1e6,
        }
    return {"version": version, "routes": out}


def _gc_ms() -> float:
    samples = []
    for _ in range(3):
        t0 = time.perf_counter()
        gc.collect()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def child_pause(framework: str, impl: str, uri: str, queued: int) -> Dict[str, Any]:
    """The collector down, ``queued`` captures waiting: the worst request, full collections, bytes per capture."""
    import tracemalloc

    calls, version, run = _calls(framework, impl, uri)
    bare, wrapped = calls["trivial/bare"], calls["trivial/wrapped"]
    run.block(bare, 500)
    bare_gc = _gc_ms()
    times: List[int] = []
    run.block(bare, queued + 2000, times)
    bare_worst = max(times) / 1e6
    times = []
    run.block(wrapped, queued + 2000, times)
    wrapped_worst = max(times) / 1e6
    full_gc = _gc_ms()
    pending = None
    if impl == "ours":
        from moesif_core.agent import _AGENTS

        pending = sum(a.pending() for a in list(_AGENTS))
    extra = 2000

    def settled() -> None:
        """Ours: wait (at most 10 s) until the backing-off worker has compacted what is queued, as it does during
        an outage, so the figure is what a waiting capture holds."""
        if impl != "ours":
            return
        deadline = time.monotonic() + 10
        queues = [a._queue for a in list(_AGENTS)]
        while time.monotonic() < deadline and any(q.compactable() for q in queues):
            time.sleep(0.05)

    settled()
    gc.collect()
    tracemalloc.start()
    m0 = tracemalloc.get_traced_memory()[0]
    run.block(wrapped, extra)
    settled()
    gc.collect()
    m1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    if impl == "ours":
        pending_after = sum(a.pending() for a in list(_AGENTS))
        held = pending_after - (pending or 0)
    else:
        held = extra
    return {
        "version": version,
        "bare_worst_ms": bare_worst,
        "bare_gc_ms": bare_gc,
        "worst_ms": wrapped_worst,
        "queued_gc_ms": full_gc,
        "pending": pending,
        "bytes_per_capture": (m1 - m0) / max(1, held),
        "held": held,
    }


def child_profile(uri: str, n: int, top: int) -> Dict[str, Any]:
    """yappi (CPU clock, every thread) over ``n`` wrapped Flask requests per route until every event is stored: the
    top entries by own time of the SDK's threads (worker, client), and of the request thread the entries in our
    packages (the rest of that thread is the app's). Builtins are not profiled (a C function's time counts in its
    Python caller's): with them, yappi put tens of thousands of the request thread's builtin calls on the workers."""
    import threading

    import yappi

    calls, _, run = _calls("flask", "ours", uri)
    expected = 0
    for route in ROUTES:
        run.block(calls[f"{route}/wrapped"], 300)
        expected += 300
    run.wait(uri, expected, 60)
    main_ident = threading.main_thread().ident
    out: Dict[str, Any] = {}
    for route in ROUTES:
        yappi.clear_stats()
        yappi.set_clock_type("cpu")
        yappi.start(builtins=False, profile_threads=True)
        run.block(calls[f"{route}/wrapped"], n)
        expected += n
        run.wait(uri, expected, 120)
        yappi.stop()
        main_ctx = next((t.id for t in yappi.get_thread_stats() if t.tid == main_ident), None)

        def rows(stats: Any, keep: Callable[[Any], bool]) -> Tuple[List[Dict[str, Any]], float]:
            merged: Dict[Tuple[str, str], Dict[str, Any]] = {}
            for s in stats:
                if not keep(s):
                    continue
                where = f"{Path(s.module).parent.name}/{Path(s.module).name}:{s.lineno}" if s.lineno else "builtin"
                row = merged.setdefault((s.name, where), {"name": s.name, "where": where, "calls": 0, "own": 0.0})
                row["calls"] += s.ncall
                row["own"] += s.tsub
            total = sum(r["own"] for r in merged.values())
            best = sorted(merged.values(), key=lambda r: -r["own"])[:top]
            return [
                {"name": r["name"], "where": r["where"], "calls": r["calls"], "own_us_per_event": r["own"] / n * 1e6}
                for r in best
            ], total / n * 1e6

        everything = yappi.get_func_stats()
        others = [s for s in everything if s.ctx_id != main_ctx]
        worker_rows, worker_total = rows(others, lambda s: True)
        main = [s for s in everything if s.ctx_id == main_ctx]
        request_rows, request_total = rows(main, lambda s: "moesif" in (s.module or ""))
        out[route] = {
            "rows": worker_rows,
            "total_us_per_event": worker_total,
            "request_rows": request_rows,
            "request_total_us_per_event": request_total,
        }
    return out


# -- the parent ------------------------------------------------------------------------------------------------------


def _fmt(x: Optional[float], unit: str = "") -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}{unit}"
    return f"{x:.1f}{unit}"


def render(results: Dict[str, Any], baseline: Optional[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    lines = [
        BEGIN,
        "## The whole cost of an event (event_cost.py)",
        "",
        f"- command: `{meta['command']}` (took {meta['minutes']:.1f} min, {meta['date']})",
        f"- machine: {run_all.cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; load "
        f"average at start {meta['load_start']}, at end {meta['load_end']} (shared: read the ratios)",
        f"- {meta['requests']:,} requests per block, medians of {meta['repeats']} alternating blocks; the collector "
        "a stub in its own process that parses, counts and discards; `--lag-budget` "
        f"{meta['lag_budget']:g} s for the originals that ship at a fixed cadence",
        "",
        "SDK CPU per event: process CPU of the wrapped requests until the collector holds every event, minus the bare "
        "requests' (every thread: request path, worker, client); in brackets the figure of the before run and ours "
        "over the original's in each run (an original that ships a few events a second is charged for those only). "
        "Request thread: its share on the request thread. "
        "Ship rate: events stored per second from the burst's first request; lag: from its last request to the last "
        "event stored. Down: the collector a closed port (median wall time added to a request). Pause: the worst "
        f"request while {meta['queued']:,} trivial captures are queued with the collector down, and a full "
        "`gc.collect()` then (the bare app's worst request and full collection in brackets). Bytes: traced memory "
        "per queued trivial capture.",
        "",
    ]
    headers = (
        "| framework | middleware | route | SDK CPU/event (µs) | request thread (µs) | ship rate (ev/s) | lag (s) "
        "| added, collector up (µs) | added, collector down (µs) |"
    )
    lines += [headers, "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    measured = sorted({key for key in results["cost"]}, key=lambda k: (FRAMEWORKS.index(k[0]), k[1] != "ours"))
    for fw, impl in measured:
        if True:
            cost, down = results["cost"][(fw, impl)], results["down"].get((fw, impl), {"error": "-"})
            label = "ours" if impl == "ours" else ORIGINALS[fw]
            for route in ROUTES:
                if "error" in cost:
                    c = [cost["error"], "", "", "", ""]
                else:
                    r = cost["routes"][route]
                    partial = (
                        "" if r["min_shipped"] >= r["requests"] else f" ({r['min_shipped']:,} of {r['requests']:,})"
                    )
                    c = [
                        _fmt(r["sdk_cpu_us"]),
                        _fmt(r["request_thread_us"]),
                        f"{r['ship_rate']:,.0f}{partial}",
                        f"{r['lag_s']:.2f}",
                        _fmt(r["added_up_us"]),
                    ]
                d = down["error"] if "error" in down else _fmt(down["routes"][route]["added_us"])
                base = ""
                if baseline and impl == "ours" and "error" not in cost:
                    b = baseline.get("cost", {}).get(f"{fw}/{impl}", {}).get("routes", {}).get(route)
                    if b:
                        base = f" (before {_fmt(b['sdk_cpu_us'])}"
                        # the before run may have had another load: the ratio to the original of the same run is
                        # what compares
                        b_orig = baseline.get("cost", {}).get(f"{fw}/orig", {}).get("routes", {}).get(route)
                        now_orig = results["cost"].get((fw, "orig"), {}).get("routes", {}).get(route)
                        if b_orig and now_orig and b_orig["sdk_cpu_us"] > 0 and now_orig["sdk_cpu_us"] > 0:
                            before_ratio = b["sdk_cpu_us"] / b_orig["sdk_cpu_us"]
                            now_ratio = cost["routes"][route]["sdk_cpu_us"] / now_orig["sdk_cpu_us"]
                            base += f"; of the original's: {before_ratio:.2f} before, {now_ratio:.2f} now"
                        base += ")"
                lines.append(f"| {TITLES[fw]} | {label} | {route} | {c[0]}{base} | " + " | ".join(c[1:]) + f" | {d} |")
    lines += [
        "",
        "| framework | middleware | worst request, captures queued (ms) | full GC then (ms) | bytes per queued "
        "capture |",
        "|---|---|---:|---:|---:|",
    ]
    for fw, impl in measured:
        if True:
            p = results["pause"].get((fw, impl), {"error": "-"})
            label = "ours" if impl == "ours" else ORIGINALS[fw]
            if "error" in p:
                lines.append(f"| {TITLES[fw]} | {label} | {p['error']} | | |")
                continue
            held = "" if impl == "ours" else " (held by the original: its queue)"
            lines.append(
                f"| {TITLES[fw]} | {label} | {p['worst_ms']:.1f} (bare {p['bare_worst_ms']:.1f}) "
                f"| {p['queued_gc_ms']:.1f} (bare {p['bare_gc_ms']:.1f}) | {p['bytes_per_capture']:,.0f}{held} |"
            )
    for title, prof in (("now", results.get("profile")), ("before", (baseline or {}).get("profile"))):
        if not prof or "error" in prof:
            continue
        when = "" if title == "now" else f" (recorded {baseline['meta']['date']} at {baseline['meta']['commit']})"
        lines += [
            "",
            f"### Profile {title}{when}",
            "",
            "yappi, CPU clock, our Flask process on each route until every event is stored; own time per event, a C "
            "function's (orjson, zlib, sockets) in its Python caller's (yappi's own overhead inflates every figure: "
            "read the order and the shares). The SDK's "
            "threads (workers, HTTP client, config), then the request thread's entries in our packages.",
        ]
        for route in ROUTES:
            for rows_key, total_key, what in (
                ("rows", "total_us_per_event", "SDK threads"),
                ("request_rows", "request_total_us_per_event", "request thread, our code"),
            ):
                if rows_key not in prof[route]:
                    continue
                lines += [
                    "",
                    f"{route}, {what}: {prof[route][total_key]:.0f} µs per event in all",
                    "",
                    "| function | where | calls | own µs/event |",
                    "|---|---|---:|---:|",
                ]
                lines += [
                    f"| `{r['name']}` | {r['where']} | {r['calls']:,} | {r['own_us_per_event']:.1f} |"
                    for r in prof[route][rows_key]
                ]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text)


def _run(python: str, args: List[str], timeout: float) -> Dict[str, Any]:
    cmd = [python, os.path.abspath(__file__), "--child", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=run_all._env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"child timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160].replace("|", "/")
        print(f"  child {' '.join(args[:3])} failed: {proc.stderr[-2000:]}", file=sys.stderr)
        return {"error": f"not measurable: {tail}"}
    return dict(json.loads(lines[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per block")
    parser.add_argument("--repeats", type=int, default=3, help="alternating blocks per route")
    parser.add_argument("--queued", type=int, default=20_000, help="captures queued for the pause measure")
    parser.add_argument("--lag-budget", type=float, default=5.0, help="seconds to wait for a burst's events")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--no-originals", action="store_true", help="measure ours only")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--save-baseline", action="store_true", help=f"keep these figures in {BASELINE.name}")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"), help="'-' to print only")
    parser.add_argument("--stub", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub:
        serve_stub()
        return
    if args.child:
        run_all.tornado_overhead._loopback_only()
        task, rest = args.child[0], args.child[1:]
        if task == "cost":
            result = child_cost(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]), float(rest[5]))
        elif task == "down":
            result = child_down(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]))
        elif task == "pause":
            result = child_pause(rest[0], rest[1], rest[2], int(rest[3]))
        else:
            result = child_profile(rest[0], int(rest[1]), int(rest[2]))
        print(json.dumps(result), flush=True)
        os._exit(0)  # do not wait for any middleware's exit flush (the collector may be down)

    started = time.monotonic()
    load_start = "/".join(f"{x:.2f}" for x in os.getloadavg())
    frameworks = [fw for fw in args.frameworks.split(",") if fw]
    impls = ("ours",) if args.no_originals else ("ours", "orig")
    originals = {}
    if not args.no_originals:
        ensure = {
            "flask": run_all.wsgi_overhead.ensure_orig_venv,
            "asgi": run_all.asgi_overhead.ensure_original_venv,
            "django": run_all.django_overhead.ensure_orig_venv,
            "tornado": run_all.tornado_overhead.ensure_orig_venv,
            "aiohttp": run_all.aiohttp_overhead.ensure_orig_venv,
        }
        originals = {fw: str(ensure[fw]()) for fw in frameworks}

    def python_for(fw: str, impl: str) -> str:
        return originals[fw] if impl == "orig" else sys.executable

    def log(what: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {what}", file=sys.stderr, flush=True)

    results: Dict[str, Any] = {"cost": {}, "down": {}, "pause": {}}
    dead = run_all.asgi_overhead.dead_uri()
    n, reps = args.requests, args.repeats
    timeout = 900.0
    proc, url = start_stub()
    try:
        for fw in frameworks:
            for impl in impls:
                log(f"cost: {fw}, {impl}")
                results["cost"][(fw, impl)] = _run(
                    python_for(fw, impl), ["cost", fw, impl, url, str(n), str(reps), str(args.lag_budget)], timeout
                )
        if not args.no_profile:
            log("profile: flask, ours")
            results["profile"] = _run(sys.executable, ["profile", url, str(n), "15"], timeout)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for fw in frameworks:
        for impl in impls:
            log(f"collector down: {fw}, {impl}")
            results["down"][(fw, impl)] = _run(
                python_for(fw, impl), ["down", fw, impl, dead, str(n), str(reps)], timeout
            )
            log(f"pause and memory: {fw}, {impl}")
            results["pause"][(fw, impl)] = _run(
                python_for(fw, impl), ["pause", fw, impl, dead, str(args.queued)], timeout
            )
    commit = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    meta = {
        "command": "python benchmarks/event_cost.py" + ("" if len(sys.argv) < 2 else " " + " ".join(sys.argv[1:])),
        "minutes": (time.monotonic() - started) / 60,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": load_start,
        "load_end": "/".join(f"{x:.2f}" for x in os.getloadavg()),
        "requests": n,
        "repeats": reps,
        "queued": args.queued,
        "lag_budget": args.lag_budget,
        "commit": commit,
    }
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() and not args.save_baseline else None
    # results keyed by tuples: JSON wants strings
    plain = {k: {f"{a}/{b}": v for (a, b), v in results[k].items()} for k in ("cost", "down", "pause")}
    plain["profile"] = results.get("profile")
    plain["meta"] = meta
    if args.save_baseline:
        BASELINE.write_text(json.dumps(plain, indent=1) + "\n")
    Path("/tmp/event_cost_last.json").write_text(json.dumps(plain, indent=1))
    section = render(results, baseline, meta)
    print(section)
    if args.output != "-":
        write_section(Path(args.output), section)
        print(f"written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
