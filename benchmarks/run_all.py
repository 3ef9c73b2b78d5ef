"""One run, one table: what each middleware adds to a request, ours against the originals, across frameworks.

    python benchmarks/run_all.py                       # about 10 minutes on 2 busy cores
    python benchmarks/run_all.py --requests 500 --rounds 2 --stall-seconds 1 --memory-requests 20000   # smoke run

For Flask (WSGI, our ``moesifwsgi`` against moesifwsgi 1.10.5), Starlette (ASGI, ``moesifasgi`` against 1.1.8: the
ASGI script drives Starlette, not FastAPI), Django (``moesifdjango`` against 2.3.13), Tornado (``moesiftornado``
against 0.1.4) and aiohttp (``moesif-aiohttp`` against 1.1.0), each in two routes:

- trivial: ``GET /hello`` answering ``{"hello": "world"}``;
- realistic: ``POST /orders`` with a 2 KB JSON body and an ``Authorization: Bearer <JWT>`` header, answering a 2 KB
  JSON body (the parsed order with a status added);

and the collector in three states: normal, slow (every ingest answered after 2 s) and down (a closed port), it
reports the median and p99 wall time per request, bare / ours / original, and the ratios to bare.

How: a local collector (``moesif_collector``) runs in its own process on 127.0.0.1. Per (collector state, framework,
middleware) one child process (ours in this interpreter, the original in the venv its per-framework script creates
under ``/tmp/bench-orig-*``) builds the bare and the wrapped app for both routes and calls them in-process (WSGI
environ / ASGI scope / Tornado ``HTTPServerRequest`` / aiohttp ``web.Request``, as the per-framework scripts do, whose
helpers it imports), alternating blocks of the four (route x bare/wrapped) so machine noise hits all alike. Every
request is timed on its own. The original's ratio is over the bare app measured in its own child.

Also: the ASGI, Tornado and aiohttp event-loop stall (worst lateness of a 1 ms ticker while requests arrive every ms,
the collector down), the RSS growth of a Flask process after ``--memory-requests`` realistic requests with the
collector down, the events per second one process ships to the loopback collector (``core_throughput.py``), what the
durable spool costs with the collector down, next to no spool (``spool_cost.py``), and (unless ``--skip-e2e``)
``e2e_load.py``'s section: Flask under gunicorn and FastAPI under uvicorn, 2 workers each, bare against wrapped, under
a loopback load generator (requests per second, p50/p99), appended to the report; and (unless ``--skip-event-cost``)
``event_cost.py``'s section: the whole cost of a captured event per adapter (SDK CPU per event over every thread, ship
rate, worst pause with captures queued, bytes per queued capture, a profile).

Nothing but 127.0.0.1 is contacted by the measurements: every middleware gets ``BASE_URI`` = the local collector (or
a closed local port), the original moesiftornado is built with ``DEBUG`` true (it ignores ``BASE_URI`` otherwise)
and ``DEBUG`` turned off after, and every child refuses at the socket level to resolve or connect to anything but
loopback. (Creating a missing ``/tmp/bench-orig-*`` venv uses pip, before any measurement.)

Prints one Markdown report and writes it to ``benchmarks/RESULTS.md``. Figures, not tests: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import io
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import aiohttp_overhead  # noqa: E402  (the sibling scripts import only the standard library at top level)
import asgi_overhead  # noqa: E402
import django_overhead  # noqa: E402
import tornado_overhead  # noqa: E402
import wsgi_overhead  # noqa: E402

FRAMEWORKS = ("flask", "asgi", "django", "tornado", "aiohttp")
TITLES = {
    "flask": "Flask (WSGI)",
    "asgi": "Starlette (ASGI)",
    "django": "Django",
    "tornado": "Tornado",
    "aiohttp": "aiohttp",
}
ORIGINALS = {
    "flask": "moesifwsgi 1.10.5",
    "asgi": "moesifasgi 1.1.8",
    "django": "moesifdjango 2.3.13",
    "tornado": "moesiftornado 0.1.4",
    "aiohttp": "moesif-aiohttp 1.1.0",
}
#: the event-loop frameworks, whose loop stall is measured
LOOPS = ("asgi", "tornado", "aiohttp")
STATES = ("normal", "slow", "down")
ROUTES = ("trivial", "realistic")
SLOW_DELAY = 2.0
RSS_CAP_MB = 1024

JWT = tornado_overhead.JWT
APP_ID = "bench-app-id"


def _order_body() -> bytes:
    items = []
    body = b""
    while len(body) < 2048 - 64:
        i = len(items)
        items.append({"sku": f"SKU-{i:04d}", "name": f"item number {i}", "qty": i % 5 + 1, "price": i * 1.25})
        body = json.dumps({"order_id": "ord-1001", "customer": "user-42", "items": items}).encode()
    return body


BODY = _order_body()


def _answer(data: Dict[str, Any]) -> Dict[str, Any]:
    data["status"] = "accepted"
    return data


# -- child: the four frameworks, each as {(route, variant): one request} -------------------------------------------


def _wsgi_environ(route: str) -> Dict[str, Any]:
    env = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/hello",
        "QUERY_STRING": "a=1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "application/json",
        "HTTP_USER_AGENT": "bench/1.0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if route == "realistic":
        env.update(
            {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/orders",
                "QUERY_STRING": "",
                "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(BODY)),
                "HTTP_AUTHORIZATION": f"Bearer {JWT}",
            }
        )
    return env


def _wsgi_caller(app: Callable[..., Any], route: str) -> Callable[[], None]:
    base = _wsgi_environ(route)
    body = BODY if route == "realistic" else b""

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def one() -> None:
        env = base.copy()
        env["wsgi.input"] = io.BytesIO(body)
        result = app(env, start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()

    return one


def flask_apps(impl: str, base_uri: str) -> Tuple[Dict[str, Callable[[], Any]], str]:
    from flask import Flask, request

    app = Flask("bench")

    @app.get("/hello")
    def hello() -> Any:
        return {"hello": "world"}

    @app.post("/orders")
    def orders() -> Any:
        return _answer(request.get_json())

    from moesifwsgi import MoesifMiddleware

    bare = app.wsgi_app
    wrapped = MoesifMiddleware(bare, {"APPLICATION_ID": APP_ID, "BASE_URI": base_uri, "LOG_BODY": True})
    calls = {
        f"{route}/{variant}": _wsgi_caller(wsgi, route)
        for route in ROUTES
        for variant, wsgi in (("bare", bare), ("wrapped", wrapped))
    }
    from importlib.metadata import version

    return calls, f"Flask {version('flask')}"


def django_apps(impl: str, base_uri: str) -> Tuple[Dict[str, Callable[[], Any]], str]:
    import django
    from django.http import JsonResponse
    from django.urls import path

    django_overhead._configure(base_uri)  # settings + the /hello view, MOESIF_MIDDLEWARE pointing at base_uri

    def orders(request: Any) -> Any:
        return JsonResponse(_answer(json.loads(request.body)))

    sys.modules["bench_urls"].urlpatterns.append(path("orders", orders))  # type: ignore[attr-defined]
    bare, wrapped = django_overhead._handlers()
    calls = {
        f"{route}/{variant}": _wsgi_caller(wsgi, route)
        for route in ROUTES
        for variant, wsgi in (("bare", bare), ("wrapped", wrapped))
    }
    return calls, f"Django {django.get_version()}"


def asgi_app(impl: str, base_uri: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    async def orders(request: Request) -> JSONResponse:
        return JSONResponse(_answer(await request.json()))

    app = Starlette(routes=[Route("/hello", hello), Route("/orders", orders, methods=["POST"])])
    if impl != "bare":
        from moesifasgi import MoesifMiddleware

        app.add_middleware(
            MoesifMiddleware, settings={"APPLICATION_ID": APP_ID, "BASE_URI": base_uri, "LOG_BODY": True}
        )
    return app


def _asgi_caller(app: Any, route: str) -> Callable[[], Any]:
    scope = dict(asgi_overhead.SCOPE)
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench/1.0"), (b"accept", b"application/json")]
    body = b""
    if route == "realistic":
        body = BODY
        scope.update(method="POST", path="/orders", raw_path=b"/orders")
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"authorization", f"Bearer {JWT}".encode()),
        ]
    else:
        scope.update(path="/hello", raw_path=b"/hello", query_string=b"a=1")
    scope["headers"] = headers

    async def send(message: Dict[str, Any]) -> None:
        return None

    async def one() -> None:
        sent = [False]

        async def receive() -> Dict[str, Any]:
            if sent[0]:
                return {"type": "http.request", "body": b"", "more_body": False}
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}

        s = dict(scope)
        s["state"] = {}
        await app(s, receive, send)

    return one


def asgi_apps(impl: str, base_uri: str) -> Tuple[Dict[str, Callable[[], Any]], str]:
    import starlette

    apps = {"bare": asgi_app("bare", base_uri), "wrapped": asgi_app(impl, base_uri)}
    calls = {f"{route}/{variant}": _asgi_caller(app, route) for route in ROUTES for variant, app in apps.items()}
    return calls, f"Starlette {starlette.__version__}"


def tornado_middleware(impl: str, base_uri: str) -> Any:
    from moesiftornado import MoesifMiddleware

    if impl == "orig":
        # the original honours BASE_URI only with DEBUG; DEBUG then prints on every request: turn it off after
        middleware = MoesifMiddleware({"APPLICATION_ID": APP_ID, "BASE_URI": base_uri, "DEBUG": True, "LOG_BODY": True})
        middleware.DEBUG = False
        return middleware
    return MoesifMiddleware({"APPLICATION_ID": APP_ID, "BASE_URI": base_uri, "LOG_BODY": True})


def tornado_app(log_function: Any = None) -> Any:
    import tornado.web

    class Hello(tornado.web.RequestHandler):
        def get(self) -> None:
            self.write({"hello": "world"})

    class Orders(tornado.web.RequestHandler):
        def post(self) -> None:
            self.write(_answer(json.loads(self.request.body)))

    settings = {"log_function": log_function} if log_function is not None else {}
    return tornado.web.Application([(r"/hello", Hello), (r"/orders", Orders)], **settings)


def _tornado_caller(app: Any, route: str) -> Callable[[], Any]:
    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

    headers = {"Host": "127.0.0.1:8000", "Accept": "application/json", "User-Agent": "bench/1.0"}
    if route == "realistic":
        start_line, body = RequestStartLine("POST", "/orders", "HTTP/1.1"), BODY
        headers.update(
            {"Content-Type": "application/json", "Content-Length": str(len(BODY)), "Authorization": f"Bearer {JWT}"}
        )
    else:
        start_line, body = RequestStartLine("GET", "/hello?a=1", "HTTP/1.1"), b""

    async def one() -> None:
        done = asyncio.get_running_loop().create_future()
        request = HTTPServerRequest(
            start_line=start_line,
            headers=HTTPHeaders(headers),
            body=body,
            connection=tornado_overhead._Connection(done),
        )  # type: ignore[arg-type]
        app(request)
        await done

    return one


def tornado_apps(impl: str, base_uri: str) -> Tuple[Dict[str, Callable[[], Any]], str]:
    import tornado

    apps = {"bare": tornado_app(), "wrapped": tornado_app(tornado_middleware(impl, base_uri).log_event)}
    calls = {f"{route}/{variant}": _tornado_caller(app, route) for route in ROUTES for variant, app in apps.items()}
    return calls, f"Tornado {tornado.version}"


def aiohttp_app(impl: str, base_uri: str) -> Any:
    from aiohttp import web

    async def hello(request: Any) -> Any:
        return web.json_response({"hello": "world"})

    async def orders(request: Any) -> Any:
        return web.json_response(_answer(await request.json()))

    middlewares = []
    if impl != "bare":
        from moesif_aiohttp import MoesifMiddleware

        middlewares.append(MoesifMiddleware({"APPLICATION_ID": APP_ID, "BASE_URI": base_uri, "LOG_BODY": True}))
    app = web.Application(middlewares=middlewares)
    app.add_routes([web.get("/hello", hello), web.post("/orders", orders)])
    return app


def _aiohttp_caller(app: Any, route: str) -> Callable[[], Any]:
    return aiohttp_overhead.caller(app, *aiohttp_overhead.request_parts(route, BODY, JWT))


def aiohttp_apps(impl: str, base_uri: str) -> Tuple[Dict[str, Callable[[], Any]], str]:
    from importlib.metadata import version

    calls = {
        f"{route}/{variant}": _aiohttp_caller(aiohttp_app("bare" if variant == "bare" else impl, base_uri), route)
        for route in ROUTES
        for variant in ("bare", "wrapped")
    }
    return calls, f"aiohttp {version('aiohttp')}"


BUILDERS = {
    "flask": (flask_apps, False),
    "asgi": (asgi_apps, True),
    "django": (django_apps, False),
    "tornado": (tornado_apps, True),
    "aiohttp": (aiohttp_apps, True),
}


def _summary(ns: List[int]) -> Dict[str, float]:
    ns = sorted(ns)
    return {
        "median_us": statistics.median(ns) / 1000,
        "p99_us": ns[min(len(ns) - 1, int(len(ns) * 0.99))] / 1000,
        "n": len(ns),
    }


async def _latency(
    calls: Dict[str, Callable[[], Any]], is_async: bool, rounds: int, n: int, budget: float
) -> Dict[str, Any]:
    perf = time.perf_counter_ns

    async def block(fn: Callable[[], Any], count: int, out: List[int]) -> None:
        if is_async:
            for _ in range(count):
                t0 = perf()
                await fn()
                out.append(perf() - t0)
        else:
            for _ in range(count):
                t0 = perf()
                fn()
                out.append(perf() - t0)

    for fn in calls.values():  # warm-up: imports, caches, first-request setup, the workers' start
        await block(fn, 200, [])
    times: Dict[str, List[int]] = {key: [] for key in calls}
    deadline = time.monotonic() + budget
    per_block = max(1, n // rounds)
    done_rounds = 0
    for r in range(rounds):
        if r and time.monotonic() > deadline:
            break  # the time budget is spent (e.g. an original blocking on a slow collector): report what we have
        keys = list(calls) if r % 2 == 0 else list(reversed(calls))
        for key in keys:
            await block(calls[key], per_block, times[key])
        done_rounds += 1
    return {key: _summary(v) for key, v in times.items()} | {"rounds_done": done_rounds}


def _describe(exc: BaseException) -> str:
    """One table-safe line: the exception, and the deepest middleware frame it came through."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if re.search(r"moesif(?!api)\w*/", f.filename)]
    where = ""
    if frames:
        f = frames[-1]
        where = f" in {'/'.join(Path(f.filename).parts[-2:])}:{f.lineno} {f.name}()"
    text = re.sub(r"\s+", " ", str(exc))[:120].replace("|", "/")
    return f"{type(exc).__name__}{where}: {text}"


def child_latency(framework: str, impl: str, base_uri: str, rounds: int, n: int, budget: float) -> Dict[str, Any]:
    builder, is_async = BUILDERS[framework]

    def build() -> Tuple[Dict[str, Callable[[], Any]], str]:
        try:
            return builder(impl, base_uri)
        except Exception as exc:  # an original that cannot start is a result, not a crash
            raise _Unbuildable(f"not measurable: the app did not start ({_describe(exc)})") from exc

    try:
        if is_async:

            async def main() -> Dict[str, Any]:
                calls, version = build()
                return await _latency(calls, True, rounds, n, budget) | {"version": version}

            return asyncio.run(main())
        calls, version = build()
        return asyncio.run(_latency(calls, False, rounds, n, budget)) | {"version": version}
    except _Unbuildable as exc:
        return {"error": str(exc)}


class _Unbuildable(Exception):
    pass


async def _stall(one: Callable[[], Any], seconds: float) -> Dict[str, Any]:
    """A ticker sleeps 1 ms in a loop and records how late it wakes while a request arrives every ms (the same
    procedure as ``asgi_overhead.stall``, for any request coroutine)."""
    for _ in range(200):
        await one()
    lags: List[float] = []
    stop = time.perf_counter() + seconds

    async def ticker() -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t0 - 0.001)

    async def load() -> int:
        count = 0
        while time.perf_counter() < stop:
            await one()
            count += 1
            await asyncio.sleep(0.001)
        return count

    _, count = await asyncio.gather(ticker(), load())
    lags.sort()
    return {"max_lag_ms": lags[-1] * 1e3, "p99_lag_ms": lags[int(len(lags) * 0.99)] * 1e3, "requests": count}


def child_stall(framework: str, impl: str, base_uri: str, seconds: float) -> Dict[str, Any]:
    async def main() -> Dict[str, Any]:
        if framework == "asgi":
            app = asgi_app(impl, base_uri)
            one = _asgi_caller(app, "realistic")
        elif framework == "aiohttp":
            one = _aiohttp_caller(aiohttp_app(impl, base_uri), "realistic")
        else:
            app = tornado_app(None if impl == "bare" else tornado_middleware(impl, base_uri).log_event)
            one = _tornado_caller(app, "realistic")
        return await _stall(one, seconds)

    return asyncio.run(main())


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child_memory(impl: str, base_uri: str, count: int, budget: float) -> Dict[str, Any]:
    calls, _ = flask_apps(impl, base_uri)
    one = calls["realistic/wrapped"]
    for _ in range(1000):
        one()
    gc.collect()
    rss0 = _rss_mb()
    deadline = time.monotonic() + budget
    done = 0
    capped = False
    while done < count and time.monotonic() < deadline:
        for _ in range(1000):
            one()
        done += 1000
        if _rss_mb() - rss0 > RSS_CAP_MB:  # the machine is shared: do not let an unbounded backlog eat it
            capped = True
            break
    gc.collect()
    time.sleep(1.0)
    return {
        "requests": done,
        "rss_start_mb": rss0,
        "rss_end_mb": _rss_mb(),
        "rss_cap_hit": capped,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "budget_hit": done < count and not capped,
    }


# -- parent ----------------------------------------------------------------------------------------------------------


def _env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def run_child(python: str, args: List[str], timeout: float) -> Dict[str, Any]:
    """Run one child; on failure return {"error": why} so the table can say it instead of leaving a hole."""
    cmd = [python, os.path.abspath(__file__), "--child", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"child timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
        print(f"  child {' '.join(args[:3])} failed: {proc.stderr[-2000:]}", file=sys.stderr)
        return {"error": f"child failed: {tail}"}
    return dict(json.loads(lines[-1]))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def throughput(n: int) -> Dict[str, Any]:
    cmd = [sys.executable, str(HERE / "core_throughput.py"), str(n)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    except subprocess.TimeoutExpired:
        return {"error": "core_throughput.py timed out after 600 s"}
    out = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and not cells[0].startswith(("measure", "---")):
            out[cells[0]] = cells[1]
    if proc.returncode != 0 or not out:
        return {"error": f"core_throughput.py failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:160]}"}
    return out


def spool_cost(requests: int) -> str:
    """``spool_cost.py``'s table under its own header, or a line saying why there is none."""
    header = "## The durable spool, collector down (spool_cost.py)\n\n"
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / "spool_cost.py"), "--requests", str(requests)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        return header + "not measured: spool_cost.py timed out\n"
    if proc.returncode != 0 or "|" not in proc.stdout:
        return header + f"not measured: {(proc.stderr.strip().splitlines() or ['no output'])[-1][:160]}\n"
    return header + proc.stdout.strip() + "\n"


def end_to_end() -> str:
    """``e2e_load.py``'s Markdown section (its own header included), or a section saying why there is none."""
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / "e2e_load.py")], capture_output=True, text=True, env=_env(), timeout=600
        )
    except subprocess.TimeoutExpired:
        return "## End to end under real servers (e2e_load.py)\n\nnot measured: e2e_load.py timed out\n"
    if proc.returncode != 0 or "|" not in proc.stdout:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return f"## End to end under real servers (e2e_load.py)\n\nnot measured: {tail}\n"
    return proc.stdout.strip() + "\n"


def event_cost() -> str:
    """``event_cost.py``'s section (the whole cost of an event per adapter, with its markers), or why there is none."""
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / "event_cost.py"), "--output", "-"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=3600,
        )
    except subprocess.TimeoutExpired:
        return "## The whole cost of an event (event_cost.py)\n\nnot measured: event_cost.py timed out\n"
    if proc.returncode != 0 or "<!-- event_cost -->" not in proc.stdout:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return f"## The whole cost of an event (event_cost.py)\n\nnot measured: {tail}\n"
    return proc.stdout[proc.stdout.index("<!-- event_cost -->") :].strip() + "\n"


def _fmt(us: float) -> str:
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}"


def cell(res: Dict[str, Any], route: str, stat: str) -> str:
    if "error" in res:
        return res["error"]
    bare, wrapped = res[f"{route}/bare"][stat], res[f"{route}/wrapped"][stat]
    return f"{_fmt(wrapped)} ({wrapped / bare:.2f}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per route and variant per child")
    parser.add_argument("--rounds", type=int, default=4, help="alternating blocks per child")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds after which a child stops its rounds")
    parser.add_argument("--stall-seconds", type=float, default=3.0)
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--memory-budget", type=float, default=150.0, help="seconds per memory child at most")
    parser.add_argument("--events", type=int, default=20_000, help="events for core_throughput.py")
    parser.add_argument("--spool-requests", type=int, default=5000, help="requests per variant for spool_cost.py")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument(
        "--skip-e2e",
        action="store_true",
        help="do not run e2e_load.py (real gunicorn / uvicorn servers under a loopback load)",
    )
    parser.add_argument(
        "--skip-event-cost",
        action="store_true",
        help="do not run event_cost.py (SDK CPU per event, ship rate, pauses and memory per adapter, ~20 min)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        tornado_overhead._loopback_only()  # nothing but loopback, in every child
        task, rest = args.child[0], args.child[1:]
        if task == "latency":
            fw, impl, uri, rounds, n, budget = rest
            result = child_latency(fw, impl, uri, int(rounds), int(n), float(budget))
        elif task == "stall":
            fw, impl, uri, seconds = rest
            result = child_stall(fw, impl, uri, float(seconds))
        else:
            impl, uri, count, budget = rest
            result = child_memory(impl, uri, int(count), float(budget))
        print(json.dumps(result), flush=True)
        os._exit(0)  # measured: do not wait for either middleware's exit flush (the collector may be down)

    started = time.monotonic()
    load_start = os.getloadavg()
    originals = {
        "flask": str(wsgi_overhead.ensure_orig_venv()),
        "asgi": str(asgi_overhead.ensure_original_venv()),
        "django": str(django_overhead.ensure_orig_venv()),
        "tornado": str(tornado_overhead.ensure_orig_venv()),
        "aiohttp": str(aiohttp_overhead.ensure_orig_venv()),
    }

    def python_for(fw: str, impl: str) -> str:
        return originals[fw] if impl == "orig" else sys.executable

    child_timeout = args.budget * 2 + 120
    latency: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
    stalls: Dict[Tuple[str, str], Dict[str, Any]] = {}
    memory: Dict[str, Dict[str, Any]] = {}
    dead = asgi_overhead.dead_uri()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = asgi_overhead.start_collector(tmp)
        try:
            for state in STATES:
                uri = dead if state == "down" else url
                if state == "slow":
                    asgi_overhead.set_faults(url, {"mode": "ok", "delay": SLOW_DELAY})
                for fw in FRAMEWORKS:
                    for impl in ("ours", "orig"):
                        print(
                            f"[{time.monotonic() - started:5.0f} s] latency: collector {state}, {fw}, {impl}",
                            file=sys.stderr,
                            flush=True,
                        )
                        latency[(state, fw, impl)] = run_child(
                            python_for(fw, impl),
                            ["latency", fw, impl, uri, str(args.rounds), str(args.requests), str(args.budget)],
                            child_timeout,
                        )
                if state == "slow":
                    asgi_overhead.set_faults(url, None)
            for fw in LOOPS:
                for impl in ("bare", "ours", "orig"):
                    print(
                        f"[{time.monotonic() - started:5.0f} s] loop stall: {fw}, {impl}", file=sys.stderr, flush=True
                    )
                    stalls[(fw, impl)] = run_child(
                        python_for(fw, impl),
                        ["stall", fw, impl, dead, str(args.stall_seconds)],
                        args.stall_seconds + 120,
                    )
            for impl in ("ours", "orig"):
                print(f"[{time.monotonic() - started:5.0f} s] memory: flask, {impl}", file=sys.stderr, flush=True)
                memory[impl] = run_child(
                    python_for("flask", impl),
                    ["memory", impl, dead, str(args.memory_requests), str(args.memory_budget)],
                    args.memory_budget + 180,
                )
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"[{time.monotonic() - started:5.0f} s] core throughput", file=sys.stderr, flush=True)
    tput = throughput(args.events)
    print(f"[{time.monotonic() - started:5.0f} s] the durable spool", file=sys.stderr, flush=True)
    spool = spool_cost(args.spool_requests)
    e2e = ""
    if not args.skip_e2e:
        print(f"[{time.monotonic() - started:5.0f} s] end to end under real servers", file=sys.stderr, flush=True)
        e2e = end_to_end()
    cost = ""
    if not args.skip_event_cost:
        print(f"[{time.monotonic() - started:5.0f} s] the whole cost of an event", file=sys.stderr, flush=True)
        cost = event_cost()
    elapsed = time.monotonic() - started
    load_end = os.getloadavg()

    report = render(args, latency, stalls, memory, tput, elapsed, load_start, load_end)
    report += "\n" + spool
    if e2e:
        report += "\n" + e2e
    if cost:
        report += "\n" + cost
    print(report)
    Path(args.output).write_text(report)
    print(f"written to {args.output}", file=sys.stderr)


def render(
    args: argparse.Namespace,
    latency: Dict[Tuple[str, str, str], Dict[str, Any]],
    stalls: Dict[Tuple[str, str], Dict[str, Any]],
    memory: Dict[str, Dict[str, Any]],
    tput: Dict[str, Any],
    elapsed: float,
    load_start: Tuple[float, ...],
    load_end: Tuple[float, ...],
) -> str:
    argv = " ".join(sys.argv[1:])
    versions = {
        fw: next((r["version"] for (s, f, i), r in latency.items() if f == fw and i == "ours" and "version" in r), "?")
        for fw in FRAMEWORKS
    }
    lines = [
        "# Middleware overhead: ours against the originals",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()} "
        f"({platform.system()} {platform.release()})",
        f"- load average (1/5/15 min) at start {'/'.join(f'{x:.2f}' for x in load_start)}, at end "
        f"{'/'.join(f'{x:.2f}' for x in load_end)}: the machine is shared, wall times move with the load",
        f"- command: `python benchmarks/run_all.py{(' ' + argv) if argv else ''}` (took {elapsed / 60:.1f} min)",
        f"- frameworks: {', '.join(versions[fw] for fw in FRAMEWORKS)} (same versions in the originals' venvs); "
        f"originals: {', '.join(ORIGINALS[fw] for fw in FRAMEWORKS)}",
        "",
        "## Per-request wall time",
        "",
        f"In-process calls, {args.requests} timed requests per route and variant per child process, in "
        f"{args.rounds} alternating blocks (a child stops after {args.budget:g} s of rounds: see n), after 200 "
        'warm-up requests each. Trivial: `GET /hello` answering `{"hello": "world"}`. Realistic: `POST /orders`, '
        f"{len(BODY)} B JSON in, about as much out, `Authorization: Bearer <JWT>`. Collector: normal; slow (every "
        f"ingest answered after {SLOW_DELAY:g} s); down (a closed port on 127.0.0.1). Cells: microseconds, and in "
        "brackets the ratio to bare measured in the same child (the original's bare ran in its own venv). Bare: "
        "from our child.",
        "",
        "| framework | route | collector | bare median | bare p99 | ours median | ours p99 | original median "
        "| original p99 | n (ours / orig) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fw in FRAMEWORKS:
        for route in ROUTES:
            for state in STATES:
                ours, orig = latency[(state, fw, "ours")], latency[(state, fw, "orig")]
                if "error" in ours:
                    bare_med = bare_p99 = ours["error"]
                else:
                    bare_med = _fmt(ours[f"{route}/bare"]["median_us"])
                    bare_p99 = _fmt(ours[f"{route}/bare"]["p99_us"])
                counts = " / ".join(str(r[f"{route}/wrapped"]["n"]) if "error" not in r else "-" for r in (ours, orig))
                lines.append(
                    f"| {TITLES[fw]} | {route} | {state} | {bare_med} | {bare_p99} "
                    f"| {cell(ours, route, 'median_us')} | {cell(ours, route, 'p99_us')} "
                    f"| {cell(orig, route, 'median_us')} | {cell(orig, route, 'p99_us')} | {counts} |"
                )
    lines += [
        "",
        "Added median time (wrapped minus bare), ours / original, per framework and collector state, realistic route "
        "(below 1: ours adds less):",
        "",
        "| framework | normal | slow | down |",
        "|---|---:|---:|---:|",
    ]
    for fw in FRAMEWORKS:
        row = [TITLES[fw]]
        for state in STATES:
            ours, orig = latency[(state, fw, "ours")], latency[(state, fw, "orig")]
            if "error" in ours or "error" in orig:
                row.append("not measured (a child failed)")
                continue
            a_ours = ours["realistic/wrapped"]["median_us"] - ours["realistic/bare"]["median_us"]
            a_orig = orig["realistic/wrapped"]["median_us"] - orig["realistic/bare"]["median_us"]
            row.append(
                f"{a_ours / a_orig:.2f} ({a_ours:.0f} vs {a_orig:.0f} us)"
                if a_orig > 0
                else f"original adds nothing measurable ({a_ours:.0f} vs {a_orig:.0f} us)"
            )
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Event-loop stall, collector down",
        "",
        f"A 1 ms ticker coroutine records how late it wakes while a realistic request arrives every ms, for "
        f"{args.stall_seconds:g} s (after 200 warm-up requests); the worst lateness is the longest time something held "
        "the loop (or the GIL).",
        "",
        "| framework | bare max / p99 lag | ours max / p99 lag | original max / p99 lag |",
        "|---|---:|---:|---:|",
    ]
    for fw in LOOPS:
        row = [TITLES[fw]]
        for impl in ("bare", "ours", "orig"):
            r = stalls[(fw, impl)]
            row.append(
                r["error"]
                if "error" in r
                else f"{r['max_lag_ms']:.1f} / {r['p99_lag_ms']:.1f} ms ({r['requests']} requests)"
            )
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Memory, collector down",
        "",
        f"RSS of a Flask process (the realistic route, wrapped) after 1000 warm-up requests and after "
        f"{args.memory_requests:,} more (at most {args.memory_budget:g} s), `gc.collect()` before each reading.",
        "",
        "| middleware | requests | RSS before | RSS after | growth | peak RSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for impl, label in (("ours", "moesifwsgi (ours)"), ("orig", ORIGINALS["flask"] + " (original)")):
        r = memory[impl]
        if "error" in r:
            lines.append(f"| {label} | {r['error']} | | | | |")
            continue
        note = " (time budget hit)" if r["budget_hit"] else ""
        if r.get("rss_cap_hit"):
            note = f" (stopped: RSS grew past {RSS_CAP_MB} MB)"
        lines.append(
            f"| {label} | {r['requests']:,}{note} | {r['rss_start_mb']:.1f} MB | {r['rss_end_mb']:.1f} MB "
            f"| {r['rss_end_mb'] - r['rss_start_mb']:+.1f} MB | {r['maxrss_mb']:.1f} MB |"
        )
    lines += [
        "",
        "## Shipping rate (core)",
        "",
        f"`python benchmarks/core_throughput.py {args.events}`: one process queues {args.events:,} realistic "
        "captures (2 KB bodies each way) and ships them to a loopback collector in its own process.",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    if "error" in tput:
        lines.append(f"| events shipped per second | {tput['error']} |")
    else:
        lines += [f"| {k} | {v} |" for k, v in tput.items()]
    lines += ["", "Figures, not tests: nothing here is asserted. On a shared machine run it more than once.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
