"""What moesifwsgi adds to a request on a trivial Flask route: ours against the original moesifwsgi 1.10.5.

Run from the monorepo root, with a Python where moesif_core, moesif_collector, moesifwsgi and flask are installed::

    python benchmarks/wsgi_overhead.py                 # default: 15 rounds x 2000 requests per variant
    python benchmarks/wsgi_overhead.py --rounds 5 --requests 1000   # quicker, noisier

The script creates ``/tmp/bench-orig-wsgi`` (a venv with ``moesifwsgi==1.10.5`` and ``flask``) when it is
missing, starts a local collector (``moesif_collector``, in this process) on 127.0.0.1 that both middlewares send
their events to (nothing goes to the internet), and runs two child processes one after the other: one with our
moesifwsgi, one with the original. Each child builds the same Flask app and calls it in-process through WSGI (a
fresh copy of one environ per request, ``start_response``, the body iterated, ``close()`` called).

Three figures per variant, each as bare / wrapped / added (wrapped minus bare) / ratio (wrapped over bare):

1. median wall time per request: blocks of bare and wrapped calls alternate so that machine noise hits both
   alike, and each request is timed on its own. This is "the time the middleware adds to a request".
2. request-thread CPU per request (``time.thread_time`` over the same blocks): the request path's own cost,
   immune to other processes on the machine; it leaves out the background threads.
3. process CPU per request, background included (``time.process_time`` from the first request of a block until
   the collector has every event of it): what the middleware costs the process in all, building, JSON, gzip and
   sending included.

The figures are printed as a Markdown table. On a shared machine, run it more than once: the wall times move with
the load; the CPU figures much less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List

ORIG_VENV = Path("/tmp/bench-orig-wsgi")
ORIG_SPEC = ["moesifwsgi==1.10.5", "flask"]

#: A JWT whose payload is {"sub": "user-42"}: both middlewares look for a user in it.
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJl"


# -- the child: one process, one middleware ------------------------------------------------------------------------


def _make_app() -> Any:
    from flask import Flask

    app = Flask("bench")

    @app.route("/hello")
    def hello() -> Any:
        return {"hello": "world"}

    return app


def _environ() -> Dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(
        path="/hello",
        query_string="a=1",
        headers={
            "Authorization": f"Bearer {JWT}",
            "Accept": "application/json",
            "User-Agent": "bench/1.0",
            "X-Forwarded-For": "203.0.113.7",
        },
    )
    env = builder.get_environ()
    builder.close()
    env["REMOTE_ADDR"] = "127.0.0.1"
    return env


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    return None


def _time_block(wsgi: Callable[..., Any], base: Dict[str, Any], n: int, out: List[int]) -> float:
    """``n`` calls; each call's wall time (ns) goes to ``out``; returns the block's request-thread CPU seconds."""
    perf = time.perf_counter_ns
    sr = _start_response
    cpu0 = time.thread_time()
    for _ in range(n):
        env = base.copy()
        start = perf()
        result = wsgi(env, sr)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
        out.append(perf() - start)
    return time.thread_time() - cpu0


def _collector_events(base_uri: str) -> int:
    with urllib.request.urlopen(base_uri + "/_admin/health", timeout=10) as resp:
        return int(json.loads(resp.read())["events"])


def _wait_events(base_uri: str, target: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while _collector_events(base_uri) < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"the collector did not get {target} events in {timeout} s")
        time.sleep(0.05)


def child(which: str, base_uri: str, rounds: int, n: int) -> Dict[str, Any]:
    from moesifwsgi import MoesifMiddleware

    app = _make_app()
    bare = app.wsgi_app
    settings = {"APPLICATION_ID": "bench-app-id", "BASE_URI": base_uri, "LOG_BODY": True}
    start_count = _collector_events(base_uri)
    wrapped = MoesifMiddleware(bare, settings)
    base = _environ()
    # warm up both paths (imports, caches, the middleware's first-request setup, the workers' start)
    warm = 500
    _time_block(bare, base, warm, [])
    _time_block(wrapped, base, warm, [])

    # 1. latency: alternating blocks, every request timed
    times: Dict[str, List[int]] = {"bare": [], "wrapped": []}
    thread_cpu: Dict[str, float] = {"bare": 0.0, "wrapped": 0.0}
    for r in range(rounds):
        order = ("bare", "wrapped") if r % 2 == 0 else ("wrapped", "bare")
        for name in order:
            wsgi = bare if name == "bare" else wrapped
            thread_cpu[name] += _time_block(wsgi, base, n, times[name])
    total = rounds * n
    sent = start_count + warm + total
    _wait_events(base_uri, sent)

    # 2. all the CPU a request costs the process, background threads included (building, JSON, gzip, sending):
    #    process CPU from the first request until the collector has every event of the block
    process_cpu: Dict[str, float] = {}
    cpu0 = time.process_time()
    _time_block(bare, base, total, [])
    process_cpu["bare"] = time.process_time() - cpu0
    cpu0 = time.process_time()
    _time_block(wrapped, base, total, [])
    _wait_events(base_uri, sent + total)
    process_cpu["wrapped"] = time.process_time() - cpu0
    return {
        "which": which,
        "requests": total,
        "median_us": {k: statistics.median(v) / 1000 for k, v in times.items()},
        "thread_cpu_us": {k: v / total * 1e6 for k, v in thread_cpu.items()},
        "process_cpu_us": {k: v / total * 1e6 for k, v in process_cpu.items()},
        "python": sys.version.split()[0],
    }


# -- the parent --------------------------------------------------------------------------------------------------


def ensure_orig_venv() -> Path:
    python = ORIG_VENV / "bin" / "python"
    probe = [str(python), "-c", "import moesifwsgi, flask"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating {ORIG_VENV} with {' '.join(ORIG_SPEC)} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(ORIG_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *ORIG_SPEC], check=True)
    return python


def run_child(python: str, which: str, base_uri: str, rounds: int, n: int) -> Dict[str, Any]:
    cmd = [
        python,
        os.path.abspath(__file__),
        "--child",
        which,
        "--base-uri",
        base_uri,
        "--rounds",
        str(rounds),
        "--requests",
        str(n),
    ]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"the {which} child failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000, help="requests per block")
    parser.add_argument("--child", choices=["ours", "orig"], help=argparse.SUPPRESS)
    parser.add_argument("--base-uri", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.base_uri, args.rounds, args.requests)))
        return

    from moesif_collector import Collector
    from moesifwsgi import __version__

    orig_python = ensure_orig_venv()
    with Collector(db_path=":memory:") as collector:
        ours = run_child(sys.executable, "ours", collector.url, args.rounds, args.requests)
        orig = run_child(str(orig_python), "orig", collector.url, args.rounds, args.requests)
        received = collector.count_events()
    labels = (("moesifwsgi 1.10.5 (original)", orig), (f"moesifwsgi {__version__} (ours)", ours))
    print(
        f"\nTrivial Flask route ({{'hello': 'world'}} as JSON, a JWT and X-Forwarded-For in the request), in-process "
        f"WSGI calls; {ours['requests']} timed requests per variant per child (Python {ours['python']}); events "
        f"received by the local collector: {received}\n"
    )
    print("| middleware | statistic | bare (us) | wrapped (us) | added (us) | wrapped/bare |")
    print("|---|---|---:|---:|---:|---:|")
    added: Dict[str, Dict[str, float]] = {}
    for label, res in labels:
        for stat, title in (
            ("median_us", "median wall time per request"),
            ("thread_cpu_us", "request-thread CPU per request"),
            ("process_cpu_us", "process CPU per request, background included"),
        ):
            bare, wrapped = res[stat]["bare"], res[stat]["wrapped"]
            added.setdefault(stat, {})[label] = wrapped - bare
            print(f"| {label} | {title} | {bare:.1f} | {wrapped:.1f} | {wrapped - bare:.1f} | {wrapped / bare:.2f} |")
    for stat, title in (
        ("median_us", "median wall time"),
        ("thread_cpu_us", "request-thread CPU"),
        ("process_cpu_us", "process CPU"),
    ):
        a_orig, a_ours = added[stat][labels[0][0]], added[stat][labels[1][0]]
        share = a_ours / a_orig if a_orig > 0 else float("inf")
        print(
            f"\nadded {title}, ours / original: {share:.2f}"
            + (" (target: at most 0.20)" if stat == "median_us" else ""),
            end="",
        )
    print()


if __name__ == "__main__":
    main()
