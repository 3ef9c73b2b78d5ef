"""What the durable spool (``SPOOL_DIR``) costs: the request path and CPU per event, spool on next to off.

    python benchmarks/spool_cost.py                  # 5000 requests per variant at 400/s, about 2 minutes
    python benchmarks/spool_cost.py --requests 2000  # quicker, noisier

One child process per variant (spool off / on x collector down / up), each a Flask app wrapped in moesifwsgi with
``run_all.py``'s realistic route (``POST /orders``, 2 KB JSON in and out, a JWT), called in-process. Down: ``BASE_URI``
is a closed loopback port; up: a local collector in its own process. ``EVENT_QUEUE_MAX_BYTES`` is 8 MiB (about 1,600
of these events), so with the collector down the memory queue fills early in the run; without a spool what does not
fit is dropped, with one everything goes to disk.

Per child: ``--requests`` bare requests, then as many wrapped ones, both at ``--rate`` a second (a load the workers
can follow: an unpaced loop outruns any worker and only measures drops), each timed on its own (median and p99 wall
time); process CPU (``time.process_time``: every thread, so the workers and the spool's drainer too) from the first
request of a block until the workers are done with it (nothing pending, or nothing changing for 2 s: without a spool
and with the collector down the queue just stays full), per request, wrapped minus bare = the CPU an event costs the
process. For spool on, collector down, the child then starts a collector on the closed port and measures how fast
the spool drains and what that costs per event.

Prints a Markdown table. Figures, not tests: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import asgi_overhead  # noqa: E402  (a collector in its own process)
import run_all  # noqa: E402  (its realistic route: body, environ, caller)

QUEUE_BYTES = 8 * 1024 * 1024
VARIANTS: List[Tuple[str, str]] = [("off", "down"), ("on", "down"), ("off", "up"), ("on", "up")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the child ------------------------------------------------------------------------------------------------------


def _apps(base_uri: str, spool: Optional[str]) -> Tuple[Callable[[], None], Callable[[], None], Any]:
    from flask import Flask, request

    from moesifwsgi import MoesifMiddleware

    app = Flask("bench")

    @app.post("/orders")
    def orders() -> Any:
        return run_all._answer(request.get_json())

    settings: Dict[str, Any] = {"APPLICATION_ID": run_all.APP_ID, "BASE_URI": base_uri}
    settings["EVENT_QUEUE_MAX_BYTES"] = QUEUE_BYTES
    if spool:
        settings["SPOOL_DIR"] = spool
    bare = app.wsgi_app
    wrapped = MoesifMiddleware(bare, settings)
    return run_all._wsgi_caller(bare, "realistic"), run_all._wsgi_caller(wrapped, "realistic"), wrapped.agent


def _settle(agent: Any, cap: float = 120.0) -> None:
    """Until the workers are done: nothing pending, or nothing changing for 2 s."""
    last, since, end = None, time.monotonic(), time.monotonic() + cap
    while time.monotonic() < end:
        snap = agent.snapshot()
        if snap["pending"] == 0:
            return
        key = (snap["pending"], snap["spooled"], snap["sent"])
        if key != last:
            last, since = key, time.monotonic()
        elif time.monotonic() - since > 2.0:
            return
        time.sleep(0.05)


def _block(fn: Callable[[], None], n: int, rate: float = 0.0) -> Tuple[List[int], float]:
    """``n`` calls, each timed; at most ``rate`` a second when given (a steady load the workers can follow).
    Returns the wall times (ns) and this thread's CPU per call (s): the request path's own cost, which the load of
    other processes does not move."""
    out = []
    perf, cpu = time.perf_counter_ns, 0.0
    start = time.monotonic()
    for k in range(n):
        if rate:
            ahead = start + k / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        c0 = time.thread_time()
        t0 = perf()
        fn()
        out.append(perf() - t0)
        cpu += time.thread_time() - c0
    return out, cpu / n


def child(spool_on: bool, base_uri: str, n: int, rate: float, tmp: str) -> Dict[str, Any]:
    spool = os.path.join(tmp, "spool") if spool_on else None
    bare, wrapped, agent = _apps(base_uri, spool)
    _block(bare, 200)
    _block(wrapped, 200)  # warm-up (and the workers start)
    _settle(agent)
    c0 = time.process_time()
    bare_ns, bare_thread = _block(bare, n, rate)
    bare_cpu = (time.process_time() - c0) / n
    before = agent.snapshot()
    c0 = time.process_time()
    ours_ns, ours_thread = _block(wrapped, n, rate)
    _settle(agent)
    ours_cpu = (time.process_time() - c0) / n
    after = agent.snapshot()
    result: Dict[str, Any] = {
        "bare_median_us": statistics.median(bare_ns) / 1e3,
        "ours_median_us": statistics.median(ours_ns) / 1e3,
        "bare_p99_us": sorted(bare_ns)[int(n * 0.99)] / 1e3,
        "ours_p99_us": sorted(ours_ns)[int(n * 0.99)] / 1e3,
        "thread_added_us": (ours_thread - bare_thread) * 1e6,
        "cpu_bare_us": bare_cpu * 1e6,
        "cpu_ours_us": ours_cpu * 1e6,
        **{k: after[k] - before[k] for k in ("dropped", "spooled", "sent")},
        "pending": after["pending"],
        "spool_bytes": after["spool_bytes"],
    }
    if spool_on and base_uri.startswith("http://127.0.0.1:"):
        on_disk = after["spooled"]
        if on_disk:  # the collector comes back on the closed port: how fast and how dear is the drain?
            port = int(base_uri.rsplit(":", 1)[1])
            proc, _ = asgi_overhead.start_collector(tmp, port)
            try:
                sent0, c0, t0 = agent.snapshot()["sent"], time.process_time(), time.monotonic()
                agent.flush(0)  # the drainer tries now, not at the end of its backoff
                while agent.snapshot()["sent"] - sent0 < on_disk and time.monotonic() - t0 < 300:
                    time.sleep(0.01)
                wall, cpu = time.monotonic() - t0, time.process_time() - c0
                drained = agent.snapshot()["sent"] - sent0
                result.update(drained=drained, drain_s=wall, drain_cpu_us=cpu / max(1, drained) * 1e6)
            finally:
                proc.terminate()
                proc.wait(10)
    return result


# -- the parent -----------------------------------------------------------------------------------------------------


def run_child(spool_on: bool, base_uri: str, n: int, rate: float) -> Dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="bench-spool-")
    try:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "on" if spool_on else "off", base_uri]
        cmd += [str(n), str(rate), tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]}
        return dict(json.loads(lines[-1]))
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(n: int, rate: float) -> Dict[Tuple[str, str], Dict[str, Any]]:
    results: Dict[Tuple[str, str], Dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = asgi_overhead.start_collector(tmp)
        try:
            for spool, state in VARIANTS:
                uri = f"http://127.0.0.1:{free_port()}" if state == "down" else url
                print(f"spool {spool}, collector {state}", file=sys.stderr, flush=True)
                results[(spool, state)] = run_child(spool == "on", uri, n, rate)
        finally:
            proc.terminate()
            proc.wait(10)
    return results


def render(results: Dict[Tuple[str, str], Dict[str, Any]], n: int, rate: float) -> str:
    lines = [
        "| spool | collector | request thread CPU, added | request median, added (bare) | request p99 (bare) "
        "| CPU per event, all threads, added | events kept: sent / on disk / in memory | dropped |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    drain = ""
    for (spool, state), r in results.items():
        if "error" in r:
            lines.append(f"| {spool} | {state} | {r['error']} | | | | | |")
            continue
        kept = f"{r['sent']:,} / {r['spooled']:,} / {r['pending']:,}"
        lines.append(
            f"| {spool} | {state} | {r['thread_added_us']:.0f} us "
            f"| {r['ours_median_us'] - r['bare_median_us']:+.0f} us ({r['bare_median_us']:.0f}) "
            f"| {r['ours_p99_us']:,.0f} us ({r['bare_p99_us']:,.0f}) "
            f"| {r['cpu_ours_us'] - r['cpu_bare_us']:.0f} us | {kept} | {r['dropped']:,} |"
        )
        if "drained" in r:
            drain = (
                f"Collector back (spool on): {r['drained']:,} spooled events sent in {r['drain_s']:.1f} s "
                f"({r['drained'] / max(r['drain_s'], 1e-9):,.0f} events/s), {r['drain_cpu_us']:.0f} us of CPU per "
                "event (reading, sending the stored gzip as is, deleting)."
            )
    out = [
        f"`python benchmarks/spool_cost.py --requests {n} --rate {rate:g}`: {n:,} realistic requests (2 KB JSON "
        f"each way, a JWT) per variant, bare then wrapped, both at {rate:g}/s, in-process Flask + moesifwsgi, "
        "`EVENT_QUEUE_MAX_BYTES` 8 MiB (about 1,600 of these events); down = a closed loopback port. Added = "
        "wrapped minus bare in the same child. Request thread CPU: `time.thread_time` of the calls. CPU per event: "
        "process CPU (every thread) per request until the workers are done. Without a spool and the collector "
        "down, the events kept in memory are not built yet (that CPU comes when the collector is back) and the "
        "rest are dropped; with one, every event is built, gzipped and written.",
        "",
        *lines,
    ]
    if drain:
        out += ["", drain]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=400.0, help="wrapped requests per second")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spool, uri, n, rate, tmp = args.child
        print(json.dumps(child(spool == "on", uri, int(n), float(rate), tmp)), flush=True)
        os._exit(0)  # measured: no exit flush towards a closed port
    print(render(measure(args.requests, args.rate), args.requests, args.rate))


if __name__ == "__main__":
    main()
