"""What moesiftornado adds to a request on a trivial Tornado handler: ours against the original moesiftornado 0.1.4.

Run from the monorepo root, with a Python where moesif_core, moesif_collector, moesiftornado and tornado are
installed::

    python benchmarks/tornado_overhead.py                 # default: 15 rounds x 2000 requests per variant
    python benchmarks/tornado_overhead.py --rounds 5 --requests 1000   # quicker, noisier

The script creates ``/tmp/bench-orig-tornado`` (a venv with ``moesiftornado==0.1.4`` and ``tornado``) when it is
missing, starts a local collector (``moesif_collector``) on 127.0.0.1 that both middlewares send to, and runs two
child processes one after the other: one with our moesiftornado, one with the original. Nothing goes to the
internet: the original honours ``BASE_URI`` only when ``DEBUG`` is true, so its child builds it with ``DEBUG`` true
and ``BASE_URI`` set to the local collector, then turns its ``DEBUG`` attribute off (it would otherwise ``print`` on
every request); and every child refuses, at the socket level, to resolve or connect to anything but loopback.

Each child builds two copies of the same ``tornado.web.Application`` (one handler writing ``{"hello": "world"}``):
bare (Tornado's default ``log_request``), and with ``log_function=middleware.log_event``. Requests are driven
in-process on a running IOLoop: an ``HTTPServerRequest`` over a minimal in-memory connection is handed to the
application, and the request is timed from its creation until the handler has finished and ``log_function`` has
returned (the response is written to the in-memory connection). Blocks of bare and wrapped requests alternate, so
that machine noise hits both alike.

Reported per variant: the median per-request time, and the mean (a block's wall time over its requests, which also
pays for background threads that build and send events, since they share the GIL). "Added" is wrapped minus bare,
"ratio" is wrapped over bare. Our child also times a third application whose middleware discards its captures
instead of queueing them: the cost of ``log_event`` and the response tap alone, without the workers (which build and
send every event, where the original sends at most 25 every 2 s and lets the rest pile up). The figures are printed
as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ORIG_VENV = Path("/tmp/bench-orig-tornado")
ORIG_SPEC = ["moesiftornado==0.1.4", "tornado"]

#: A JWT whose payload is {"sub": "user-42"}: both middlewares look for a user in it.
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJl"
HEADERS = {
    "Host": "127.0.0.1:8888",
    "Authorization": f"Bearer {JWT}",
    "Accept": "application/json",
    "User-Agent": "bench/1.0",
    "X-Forwarded-For": "203.0.113.7",
}
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


# -- the child: one process, one middleware ------------------------------------------------------------------------


def _loopback_only() -> None:
    """Make any attempt to reach a non-loopback host fail loudly in this process."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and str(host) not in LOOPBACK:
            raise OSError(f"benchmark: refusing to resolve {host!r} (loopback only)")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and str(address[0]) not in LOOPBACK:
            raise OSError(f"benchmark: refusing to connect to {address!r} (loopback only)")
        real_connect(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]


class _Context:
    remote_ip = "127.0.0.1"
    protocol = "http"


class _Connection:
    """The part of ``HTTP1Connection`` a RequestHandler uses, writing nowhere."""

    context = _Context()

    def __init__(self, done: Any) -> None:
        self.done = done

    def set_close_callback(self, callback: Any) -> None:
        pass

    def _resolved(self) -> Any:
        import asyncio

        f = asyncio.get_running_loop().create_future()
        f.set_result(None)
        return f

    def write_headers(self, start_line: Any, headers: Any, chunk: Optional[bytes] = None) -> Any:
        return self._resolved()

    def write(self, chunk: bytes) -> Any:
        return self._resolved()

    def finish(self) -> None:
        self.done.set_result(None)


def _make_app(**settings: Any) -> Any:
    import tornado.web

    class Hello(tornado.web.RequestHandler):
        def get(self) -> None:
            self.write({"hello": "world"})

    return tornado.web.Application([(r"/hello", Hello)], **settings)


async def _time_block(app: Any, n: int, out: List[int]) -> float:
    import asyncio

    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

    loop = asyncio.get_running_loop()
    perf = time.perf_counter_ns
    start_line = RequestStartLine("GET", "/hello?a=1", "HTTP/1.1")
    t0 = time.perf_counter()
    for _ in range(n):
        start = perf()
        done = loop.create_future()
        request = HTTPServerRequest(
            start_line=start_line, headers=HTTPHeaders(HEADERS), body=b"", connection=_Connection(done)
        )  # type: ignore[arg-type]
        app(request)
        await done
        out.append(perf() - start)
    return time.perf_counter() - t0


async def _child(which: str, base_uri: str, rounds: int, n: int) -> Dict[str, Any]:
    from moesiftornado import MoesifMiddleware

    if which == "orig":
        # the original honours BASE_URI only with DEBUG; DEBUG then prints on every request: turn it off after
        middleware = MoesifMiddleware(
            {"APPLICATION_ID": "bench-app-id", "BASE_URI": base_uri, "DEBUG": True, "LOG_BODY": True}
        )
        middleware.DEBUG = False
    else:
        middleware = MoesifMiddleware({"APPLICATION_ID": "bench-app-id", "BASE_URI": base_uri, "LOG_BODY": True})
    apps = {"bare": _make_app(), "wrapped": _make_app(log_function=middleware.log_event)}
    if which == "ours":
        # the request path alone: a second middleware whose captures are discarded instead of queued, so no
        # background work competes for the GIL
        path_only = MoesifMiddleware({"APPLICATION_ID": "bench-app-id", "BASE_URI": base_uri, "LOG_BODY": True})
        path_only.agent.capture = lambda raw: True  # type: ignore[method-assign]
        apps["path"] = _make_app(log_function=path_only.log_event)
    # warm up every path (imports, caches, the middleware's first-request setup, the workers' start)
    for app in apps.values():
        await _time_block(app, 500, [])
    times: Dict[str, List[int]] = {name: [] for name in apps}
    walls: Dict[str, float] = {name: 0.0 for name in apps}
    for r in range(rounds):
        order = list(apps) if r % 2 == 0 else list(reversed(apps))
        for name in order:
            walls[name] += await _time_block(apps[name], n, times[name])
    if which == "ours":
        middleware.flush(10)
    total = rounds * n
    import tornado

    return {
        "which": which,
        "requests": total,
        "median_us": {k: statistics.median(v) / 1000 for k, v in times.items()},
        "mean_us": {k: walls[k] / total * 1e6 for k in walls},
        "python": sys.version.split()[0],
        "tornado": tornado.version,
    }


def child(which: str, base_uri: str, rounds: int, n: int) -> Dict[str, Any]:
    import asyncio

    _loopback_only()
    return asyncio.run(_child(which, base_uri, rounds, n))


# -- the parent --------------------------------------------------------------------------------------------------


def ensure_orig_venv() -> Path:
    python = ORIG_VENV / "bin" / "python"
    probe = [str(python), "-c", "import moesiftornado, tornado, moesifapi"]
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000, help="requests per block")
    parser.add_argument("--child", choices=["ours", "orig"], help=argparse.SUPPRESS)
    parser.add_argument("--base-uri", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.base_uri, args.rounds, args.requests)))
        return

    from moesif_collector import Collector

    orig_python = ensure_orig_venv()
    received: Dict[str, int] = {}
    with Collector(db_path=":memory:") as collector:
        ours = run_child(sys.executable, "ours", collector.url, args.rounds, args.requests)
        received["ours"] = collector.count_events()
        orig = run_child(str(orig_python), "orig", collector.url, args.rounds, args.requests)
        received["orig"] = collector.count_events() - received["ours"]
    rows = []
    variants = (
        ("moesiftornado 0.1.4 (original)", orig, "wrapped"),
        ("moesiftornado (ours)", ours, "wrapped"),
        ("ours, request path only (captures discarded)", ours, "path"),
    )
    for label, res, key in variants:
        for stat in ("median_us", "mean_us"):
            bare, wrapped = res[stat]["bare"], res[stat][key]
            rows.append((label, stat.split("_")[0], bare, wrapped, wrapped - bare, wrapped / bare))
    print(
        f"\nTrivial Tornado handler, in-process requests on a running IOLoop, {ours['requests']} requests per "
        f"variant per child (Python {ours['python']}, Tornado {ours['tornado']} in both children)"
    )
    print(
        f"events received by the local collector: ours {received['ours']} (of {ours['requests'] + 500}), "
        f"original {received['orig']} (it sends at most 25 every 2 s)\n"
    )
    print("| middleware | statistic | bare (us) | wrapped (us) | added (us) | wrapped/bare |")
    print("|---|---|---:|---:|---:|---:|")
    for label, stat, bare, wrapped, added, ratio in rows:
        print(f"| {label} | {stat} | {bare:.1f} | {wrapped:.1f} | {added:.1f} | {ratio:.2f} |")
    added = {r[0]: r[4] for r in rows if r[1] == "median"}
    a_orig, a_ours = added["moesiftornado 0.1.4 (original)"], added["moesiftornado (ours)"]
    share = a_ours / a_orig if a_orig > 0 else float("inf")
    print(f"\nadded time, ours / original (medians): {share:.2f}")


if __name__ == "__main__":
    main()
