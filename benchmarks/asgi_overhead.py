"""What the ASGI middleware adds to a request, ours against the original moesifasgi 1.1.8, side by side.

A trivial Starlette route (``GET /`` -> ``PlainTextResponse("ok")``) is called in-process by driving the ASGI
callable directly (hand-built scope, ``receive`` and ``send``), bare, wrapped in our ``MoesifMiddleware`` and
wrapped in the original's. Each measurement runs in a fresh child process: ours and bare in this interpreter,
the original in its own venv (``/tmp/bench-orig-asgi``, created with ``pip install moesifasgi==1.1.8`` if missing).
Both middlewares point at the local collector, run in its own process on 127.0.0.1 (nothing goes to the internet;
the original's outgoing capture is off).

Per child:
  1. overhead: ``--requests`` calls back to back (after a warm-up); the median wall time per call, and the CPU
     time per call of the whole process (all threads, the middleware's background shipping included, counted
     until 1.5 s after the last call; unlike wall time it is not inflated when the shared machine is busy).
  2. loop stall: a ticker coroutine sleeps 1 ms in a loop and records how late it wakes, while requests arrive
     every millisecond for ``--stall-seconds``; the worst lateness is how long something held the event loop
     (or the GIL) at once.
Both with the collector up, down (nothing listening on the port) and slow (every ingest answered after 2 s).
The two spread their work differently (the original builds its event on the request path, ours in a worker
thread), so the CPU column counts every thread: what each costs per request, wherever the work happens.
Rounds alternate bare / ours / original, so machine noise hits all three alike; figures are medians over rounds.

    python benchmarks/asgi_overhead.py [--requests 5000] [--rounds 3] [--stall-seconds 2]     # about 4 minutes

Prints a Markdown table. A figure, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Dict, List, Optional

ORIG_VENV = "/tmp/bench-orig-asgi"
ORIG_VERSION = "1.1.8"
SLOW_DELAY = 2.0
IMPLS = ("bare", "ours", "original")


# -- child: one measurement ------------------------------------------------------------------------------------------


def build_app(impl: str, base_uri: str) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", home)])
    settings = {"APPLICATION_ID": "bench-app", "BASE_URI": base_uri, "LOG_BODY": True}
    if impl == "ours" or impl == "original":
        from moesifasgi import MoesifMiddleware

        app.add_middleware(MoesifMiddleware, settings=settings)
    return app


SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench.local"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def call(app: Any) -> None:
    scope = dict(SCOPE)
    scope["state"] = {}

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Dict[str, Any]) -> None:
        return None

    await app(scope, receive, send)


async def overhead(app: Any, n: int) -> Dict[str, float]:
    """The median wall time per call, and the CPU time per call of the whole process (every thread: the
    middleware's background work included; unlike wall time, not inflated when the machine is busy)."""
    for _ in range(min(500, n)):
        await call(app)
    times: List[float] = []
    perf = time.perf_counter
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = perf()
        await call(app)
        times.append(perf() - t0)
    await asyncio.sleep(1.5)  # let the background work for these calls finish, and count it too
    cpu = time.process_time() - cpu0
    return {"median": statistics.median(times), "cpu": cpu / n}


async def stall(app: Any, seconds: float) -> Dict[str, float]:
    lags: List[float] = []
    stop = time.perf_counter() + seconds

    async def ticker() -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t0 - 0.001)

    async def load() -> int:
        n = 0
        while time.perf_counter() < stop:
            await call(app)
            n += 1
            await asyncio.sleep(0.001)
        return n

    _, n = await asyncio.gather(ticker(), load())
    lags.sort()
    return {"max_lag": lags[-1], "p99_lag": lags[int(len(lags) * 0.99)], "stall_requests": n}


async def child_main(impl: str, base_uri: str, n: int, stall_seconds: float) -> Dict[str, Any]:
    app = build_app(impl, base_uri)
    result: Dict[str, Any] = await overhead(app, n)
    result.update(await stall(app, stall_seconds))
    return result


# -- parent: orchestration -------------------------------------------------------------------------------------------


def ensure_original_venv() -> str:
    python = os.path.join(ORIG_VENV, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {ORIG_VENV} with moesifasgi=={ORIG_VERSION} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", ORIG_VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", f"moesifasgi=={ORIG_VERSION}"], check=True)
    return python


def start_collector(tmp: str, port: int = 0) -> tuple[subprocess.Popen[str], str]:
    """A local collector in its own process on ``port`` (0: a free one); returns it and its base URI."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "moesif_collector",
            "serve",
            "--port",
            str(port),
            "--db",
            os.path.join(tmp, f"bench-{port}.db" if port else "bench.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the collector did not start: {line!r}")
    return proc, line.strip().rsplit(" ", 1)[-1]


def set_faults(url: str, body: Optional[Dict[str, Any]]) -> None:
    req = urllib.request.Request(
        url + "/_admin/faults",
        method="POST" if body else "DELETE",
        data=json.dumps(body).encode() if body else None,
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=5).close()


def dead_uri() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return f"http://127.0.0.1:{port}"


def run_child(python: str, impl: str, base_uri: str, args: argparse.Namespace) -> Dict[str, Any]:
    cmd = [
        python,
        os.path.abspath(__file__),
        "--child",
        impl,
        "--base-uri",
        base_uri,
        "--requests",
        str(args.requests),
        "--stall-seconds",
        str(args.stall_seconds),
    ]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{impl} child failed ({out.returncode}):\n{out.stdout}\n{out.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per collector state (figures are medians)")
    parser.add_argument("--stall-seconds", type=float, default=2.0)
    parser.add_argument("--child", choices=IMPLS)
    parser.add_argument("--base-uri")
    args = parser.parse_args()

    if args.child:
        result = asyncio.run(child_main(args.child, args.base_uri, args.requests, args.stall_seconds))
        print(json.dumps(result), flush=True)
        os._exit(0)  # measured: do not wait for either middleware's exit flush

    orig_python = ensure_original_venv()
    pythons = {"bare": sys.executable, "ours": sys.executable, "original": orig_python}
    results: Dict[str, Dict[str, List[Dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_collector(tmp)
        try:
            modes = [("up", url, args.rounds), ("down", dead_uri(), args.rounds), ("slow", url, args.rounds)]
            for mode, base_uri, rounds in modes:
                if mode == "slow":
                    set_faults(url, {"mode": "ok", "delay": SLOW_DELAY})
                for r in range(rounds):
                    for impl in IMPLS:
                        print(f"collector {mode}, round {r + 1}/{rounds}: {impl} ...", file=sys.stderr, flush=True)
                        res = run_child(pythons[impl], impl, base_uri, args)
                        results.setdefault(mode, {}).setdefault(impl, []).append(res)
                if mode == "slow":
                    set_faults(url, None)
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    def med(mode: str, impl: str, key: str) -> float:
        return float(statistics.median(float(r[key]) for r in results[mode][impl]))

    print(
        f"\nASGI middleware overhead: trivial Starlette route, {args.requests} in-process calls per run; "
        f"medians over rounds; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}.\n"
    )
    print(
        "| collector | impl | wall per request | added | ratio to bare | CPU per request (all threads) | added CPU "
        "| max loop stall | p99 stall |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in ("up", "down", "slow"):
        bare = med(mode, "bare", "median")
        bare_cpu = med(mode, "bare", "cpu")
        for impl in IMPLS:
            m = med(mode, impl, "median")
            c = med(mode, impl, "cpu")
            added = "" if impl == "bare" else us(m - bare)
            added_cpu = "" if impl == "bare" else us(c - bare_cpu)
            print(
                f"| {mode} | {impl} | {us(m)} | {added} | {m / bare:.2f}x | {us(c)} | {added_cpu} "
                f"| {ms(med(mode, impl, 'max_lag'))} | {ms(med(mode, impl, 'p99_lag'))} |"
            )
    print()
    for mode in ("up", "down", "slow"):
        bare = med(mode, "bare", "median")
        ours = med(mode, "ours", "median") - bare
        orig = med(mode, "original", "median") - bare
        bare_cpu = med(mode, "bare", "cpu")
        ours_cpu = med(mode, "ours", "cpu") - bare_cpu
        orig_cpu = med(mode, "original", "cpu") - bare_cpu
        print(
            f"collector {mode}: ours adds {us(ours)} (wall) / {us(ours_cpu)} (CPU), the original {us(orig)} / "
            f"{us(orig_cpu)}: ours is {ours / orig:.2f} / {ours_cpu / orig_cpu:.2f} of the original's."
        )


if __name__ == "__main__":
    main()
