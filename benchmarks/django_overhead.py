"""What moesifdjango adds to a request on a trivial Django view, ours against the original moesifdjango 2.3.13, and
how many events per second one process ships.

Run from the monorepo root, with a Python where moesif_core, moesif_collector, moesifdjango and Django are
installed::

    python benchmarks/django_overhead.py                         # 15 rounds x 2000 requests, 10 s throughput runs
    python benchmarks/django_overhead.py --rounds 5 --requests 1000 --seconds 5    # quicker, noisier

The script creates ``/tmp/bench-orig-django`` (a venv with ``moesifdjango==2.3.13`` and the same Django as this
Python) when it is missing, and starts a local collector (``moesif_collector``) on 127.0.0.1 in this process; both
middlewares send there (nothing goes to the internet). Then it runs child processes one after the other, one per
middleware:

- Overhead: the child configures Django with one view (``JsonResponse({"hello": "world"})``), builds two
  ``WSGIHandler``s, bare (``MIDDLEWARE = []``) and wrapped (``MIDDLEWARE = [the moesif middleware]``), and calls them
  in-process as a WSGI server would (a fresh environ with a JWT ``Authorization`` header per request, the body
  iterated, ``close()`` called), alternating blocks of bare and wrapped calls so machine noise hits both alike. Each
  request is timed on its own; reported are the median per request and the mean (a block's wall time over its
  requests, which also pays for the background threads that build and send events: they share the GIL).
- Throughput: the child calls the wrapped handler as fast as it can for ``--seconds``; the parent counts the events
  that reached the collector in that window. Reported: requests made per second, events shipped per second, and
  (ours) how long the rest took to arrive after the load stopped.

The figures are printed as Markdown tables.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

ORIG_VENV = Path("/tmp/bench-orig-django")
ORIG_VERSION = "2.3.13"

#: A JWT whose payload is {"sub": "user-42"}: both middlewares look for a user in it.
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJl"
MIDDLEWARE = {"ours": "moesifdjango.middleware.moesif_middleware", "orig": "moesifdjango.middleware.moesif_middleware"}


# -- the child: one process, one middleware ------------------------------------------------------------------------


def _configure(base_uri: str) -> None:
    import django
    from django.conf import settings
    from django.http import JsonResponse
    from django.urls import path

    def hello(request: Any) -> Any:
        return JsonResponse({"hello": "world"})

    urls = type(sys)("bench_urls")
    urls.urlpatterns = [path("hello", hello)]  # type: ignore[attr-defined]
    sys.modules["bench_urls"] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="bench_urls",
        INSTALLED_APPS=[],
        DATABASES={},
        MIDDLEWARE=[],
        USE_TZ=True,
        MOESIF_MIDDLEWARE={"APPLICATION_ID": "bench-app-id", "BASE_URI": base_uri, "LOG_BODY": True},
        LOGGING_CONFIG=None,
    )
    django.setup()


def _handlers() -> tuple[Callable[..., Any], Callable[..., Any]]:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    bare = WSGIHandler()
    with override_settings(MIDDLEWARE=[MIDDLEWARE["ours"]]):
        wrapped = WSGIHandler()
    return bare, wrapped


def _environ() -> Dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/hello",
        "QUERY_STRING": "a=1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {JWT}",
        "HTTP_ACCEPT": "application/json",
        "HTTP_USER_AGENT": "bench/1.0",
        "HTTP_X_FORWARDED_FOR": "203.0.113.7",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    return None


def _call(wsgi: Callable[..., Any], base: Dict[str, Any]) -> None:
    env = base.copy()
    env["wsgi.input"] = io.BytesIO(b"")
    result = wsgi(env, _start_response)
    for _chunk in result:
        pass
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _time_block(wsgi: Callable[..., Any], base: Dict[str, Any], n: int, out: List[int]) -> float:
    perf = time.perf_counter_ns
    t0 = time.perf_counter()
    for _ in range(n):
        start = perf()
        _call(wsgi, base)
        out.append(perf() - start)
    return time.perf_counter() - t0


def child_overhead(which: str, base_uri: str, rounds: int, n: int) -> Dict[str, Any]:
    _configure(base_uri)
    bare, wrapped = _handlers()
    base = _environ()
    # warm up both paths (imports, caches, the middleware's first-request setup, the workers' start)
    _time_block(bare, base, 500, [])
    _time_block(wrapped, base, 500, [])
    times: Dict[str, List[int]] = {"bare": [], "wrapped": []}
    walls: Dict[str, float] = {"bare": 0.0, "wrapped": 0.0}
    for r in range(rounds):
        order = ("bare", "wrapped") if r % 2 == 0 else ("wrapped", "bare")
        for name in order:
            walls[name] += _time_block(bare if name == "bare" else wrapped, base, n, times[name])
    total = rounds * n
    import django

    return {
        "which": which,
        "requests": total,
        "median_us": {k: statistics.median(v) / 1000 for k, v in times.items()},
        "mean_us": {k: walls[k] / total * 1e6 for k in walls},
        "python": sys.version.split()[0],
        "django": django.get_version(),
    }


def child_throughput(which: str, base_uri: str, seconds: float) -> Dict[str, Any]:
    _configure(base_uri)
    _, wrapped = _handlers()
    base = _environ()
    _call(wrapped, base)  # start the workers
    print("READY", flush=True)
    sys.stdin.readline()  # the parent has noted the collector's count
    made = 0
    t0 = time.monotonic()
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        for _ in range(100):
            _call(wrapped, base)
        made += 100
    elapsed = time.monotonic() - t0
    print(json.dumps({"which": which, "requests": made, "seconds": elapsed}), flush=True)
    sys.stdin.readline()  # the parent has counted; exit (ours flushes what is left at exit)
    return {}


# -- the parent --------------------------------------------------------------------------------------------------


def ensure_orig_venv() -> Path:
    import django

    python = ORIG_VENV / "bin" / "python"
    probe = [str(python), "-c", "import moesifdjango.middleware, django"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    spec = [f"moesifdjango=={ORIG_VERSION}", f"django=={django.get_version()}"]
    print(f"creating {ORIG_VENV} with {' '.join(spec)} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(ORIG_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *spec], check=True)
    return python


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def run_overhead(python: str, which: str, base_uri: str, rounds: int, n: int) -> Dict[str, Any]:
    cmd = [
        python,
        os.path.abspath(__file__),
        "--child",
        which,
        "--mode",
        "overhead",
        "--base-uri",
        base_uri,
        "--rounds",
        str(rounds),
        "--requests",
        str(n),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"the {which} child failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run_throughput(python: str, which: str, collector: Any, seconds: float) -> Dict[str, Any]:
    cmd = [
        python,
        os.path.abspath(__file__),
        "--child",
        which,
        "--mode",
        "throughput",
        "--base-uri",
        collector.url,
        "--seconds",
        str(seconds),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env())
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise SystemExit(f"the {which} throughput child failed to start: {line!r}")
        time.sleep(2.5)  # let the warm-up event go out, so the window counts only the load's events
        before = collector.count_events()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline())
        window_end = collector.count_events()
        shipped = window_end - before
        drain = None
        if which == "ours":
            deadline = time.monotonic() + 120
            t0 = time.monotonic()
            while collector.count_events() - before < result["requests"] and time.monotonic() < deadline:
                time.sleep(0.05)
            if collector.count_events() - before >= result["requests"]:
                drain = time.monotonic() - t0
        proc.stdin.write("done\n")
        proc.stdin.flush()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return {**result, "shipped": shipped, "drain_s": drain}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000, help="requests per block")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput run")
    parser.add_argument("--child", choices=["ours", "orig"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["overhead", "throughput"], help=argparse.SUPPRESS)
    parser.add_argument("--base-uri", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.mode == "overhead":
            print(json.dumps(child_overhead(args.child, args.base_uri, args.rounds, args.requests)))
        else:
            child_throughput(args.child, args.base_uri, args.seconds)
        return

    from moesif_collector import Collector

    orig_python = str(ensure_orig_venv())
    with Collector(db_path=":memory:") as collector:
        ours = run_overhead(sys.executable, "ours", collector.url, args.rounds, args.requests)
        orig = run_overhead(orig_python, "orig", collector.url, args.rounds, args.requests)
        tp_ours = run_throughput(sys.executable, "ours", collector, args.seconds)
        tp_orig = run_throughput(orig_python, "orig", collector, args.seconds)

    print(
        f"\nTrivial Django view (Django {ours['django']}, Python {ours['python']}), in-process WSGI calls, "
        f"{ours['requests']} requests per variant\n"
    )
    print("| middleware | statistic | bare (us) | wrapped (us) | added (us) | wrapped/bare |")
    print("|---|---|---:|---:|---:|---:|")
    added: Dict[str, float] = {}
    for label, res in ((f"moesifdjango {ORIG_VERSION} (original)", orig), ("moesifdjango (ours)", ours)):
        for stat in ("median_us", "mean_us"):
            bare, wrapped = res[stat]["bare"], res[stat]["wrapped"]
            if stat == "median_us":
                added[label] = wrapped - bare
            print(
                f"| {label} | {stat.split('_')[0]} | {bare:.1f} | {wrapped:.1f} | {wrapped - bare:.1f} "
                f"| {wrapped / bare:.2f} |"
            )
    a_orig, a_ours = added[f"moesifdjango {ORIG_VERSION} (original)"], added["moesifdjango (ours)"]
    print(f"\nadded time, ours / original (medians): {a_ours / a_orig:.2f}" if a_orig > 0 else "")

    print(
        f"\nEvents shipped by one process to the local collector while it serves as fast as it can "
        f"({args.seconds:g} s per run)\n"
    )
    print(
        "| middleware | requests/s made | events/s shipped during the load | rest arrived after | "
        "events/s overall (all events / (load + rest)) |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, tp in ((f"moesifdjango {ORIG_VERSION} (original)", tp_orig), ("moesifdjango (ours)", tp_ours)):
        rate = tp["requests"] / tp["seconds"]
        shipped = tp["shipped"] / tp["seconds"]
        if tp["drain_s"] is None:
            drain, overall = "never (the backlog only grows)", f"{shipped:.1f}"
        else:
            drain, overall = f"{tp['drain_s']:.2f} s", f"{tp['requests'] / (tp['seconds'] + tp['drain_s']):.0f}"
        print(f"| {label} | {rate:.0f} | {shipped:.1f} | {drain} | {overall} |")


if __name__ == "__main__":
    main()
