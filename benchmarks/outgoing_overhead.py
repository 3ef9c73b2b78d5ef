"""What outgoing capture (moesifpythonrequest) adds to a call made with requests or httpx to a loopback API.

Run from the monorepo root, with a Python where moesif_core, moesif_collector, moesifpythonrequest, requests and
httpx are installed::

    python benchmarks/outgoing_overhead.py                      # default: 10 rounds x 300 calls per variant
    python benchmarks/outgoing_overhead.py --rounds 4 --calls 200   # quicker, noisier

The parent starts a local collector (``moesif_collector``, in-process, 127.0.0.1) as the Moesif side and a small
third-party API in a child process (``http.server``, HTTP/1.1 keep-alive), then runs the measurements in a second
child process so that neither server shares its GIL. Nothing goes to the internet.

For each scenario, blocks of calls in three modes rotate (so that machine noise hits every mode alike):
capture off; capture on with an agent that drops what it is given ("events dropped": what capture costs the
calling thread itself); and capture on with a real agent shipping to the collector ("on": that cost plus the
agent's worker threads building, gzipping and sending the events, which share the GIL and, on a small machine,
the CPU with the caller and the collector). Capture is switched with ``moesifpythonrequest.start(settings,
agent)`` / ``stop()`` between blocks; the real agent is flushed (untimed) after every block. Each call is timed
on its own. Reported: the median per-call time; "best", the lowest of the blocks' medians (the block least
disturbed by other work on the machine); and the mean (a block's wall time over its calls). "Added" is a
mode minus off; "on/off" is the ratio of the real thing. The "canned adapter" scenario answers from memory (no
network) to show the SDK's own cost; when moesifwsgi is installed, its incoming path around a trivial WSGI app is
measured the same way for comparison.
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
from typing import Any, Callable, Dict, List, Tuple

# -- the third-party API (child process) ---------------------------------------------------------------------------


def serve_api() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    small = json.dumps({"id": 42, "name": "widget", "tags": ["a", "b"], "price": 9.99}).encode()
    big = bytes(range(256)) * 256  # 64 KiB

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _route(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            if self.path.startswith("/echo"):
                out, ctype = body, "application/json"
            elif self.path.startswith("/big"):
                out, ctype = big, "application/octet-stream"
            else:
                out, ctype = small, "application/json"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _route

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


# -- the measuring child -------------------------------------------------------------------------------------------


def _canned_session() -> Any:
    """A requests session whose adapter answers from memory: what capture costs without any network."""
    import requests
    from requests.adapters import BaseAdapter
    from urllib3 import HTTPResponse

    body = json.dumps({"id": 42, "name": "widget"}).encode()
    builder = requests.adapters.HTTPAdapter()

    class Canned(BaseAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            raw = HTTPResponse(
                body=io.BytesIO(body),
                headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
                status=200,
                preload_content=False,
            )
            return builder.build_response(request, raw)

        def close(self) -> None:
            pass

    s = requests.Session()
    s.mount("http://canned.invalid/", Canned())
    return s


def scenarios(api: str) -> List[Tuple[str, Callable[[], Any]]]:
    import httpx
    import requests

    session = requests.Session()
    client = httpx.Client()
    canned = _canned_session()
    payload = {"items": [{"id": i, "name": f"item-{i}", "qty": i % 7} for i in range(20)]}  # ~0.9 KB of JSON

    def session_get() -> Any:
        return session.get(api + "/json").content

    def session_post() -> Any:
        return session.post(api + "/echo", json=payload).content

    def module_get() -> Any:  # a new Session and connection per call, as requests.get does
        return requests.get(api + "/json").content

    def streamed() -> Any:
        with session.get(api + "/big", stream=True) as r:
            for _ in r.iter_content(8192):
                pass

    def httpx_get() -> Any:
        return client.get(api + "/json").content

    def canned_get() -> Any:
        return canned.get("http://canned.invalid/json").content

    return [
        ("requests Session.get, small JSON", session_get),
        ("requests Session.post, 0.9 KB JSON both ways", session_post),
        ("requests.get (new connection per call)", module_get),
        ("requests stream=True, 64 KiB in 8 KiB chunks", streamed),
        ("httpx.Client.get, small JSON", httpx_get),
        ("requests, canned adapter (no network)", canned_get),
    ]


def _block(fn: Callable[[], Any], n: int, out: List[int]) -> float:
    perf = time.perf_counter_ns
    t0 = time.perf_counter()
    for _ in range(n):
        start = perf()
        fn()
        out.append(perf() - start)
    return time.perf_counter() - t0


class NullAgent:
    """Takes events and drops them: with it, "on" costs only what capture does on the calling thread."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.client = type("Client", (), {"base_uri": settings.base_uri})()

    def capture(self, raw: Any) -> bool:
        return True

    def flush(self, timeout: float = 0) -> bool:
        return True


def incoming_scenario(base_uri: str) -> Any:
    """The incoming path for comparison: moesifwsgi around a trivial WSGI app (``None`` if not installed).

    "events dropped" replaces its agent's ``capture`` by one that drops the event, as :class:`NullAgent` does.
    """
    try:
        from moesifwsgi import MoesifMiddleware
    except ImportError:
        return None
    body = json.dumps({"id": 42, "name": "widget", "tags": ["a", "b"], "price": 9.99}).encode()

    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    mw = MoesifMiddleware(app, {"APPLICATION_ID": "bench-app-id", "BASE_URI": base_uri})
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/json",
        "QUERY_STRING": "a=1",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "HTTP_HOST": "bench",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "HTTP_ACCEPT": "application/json",
        "HTTP_USER_AGENT": "bench/1.0",
        "wsgi.input": io.BytesIO(b""),
        "SERVER_PROTOCOL": "HTTP/1.1",
    }

    def sr(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def make(mode: str) -> Callable[[], Any]:
        mw.agent.flush(10)  # untimed: the previous block's events are sent before the next block starts
        wsgi: Callable[..., Any] = app if mode == "off" else mw
        if mode == "null":
            mw.agent.capture = lambda raw: True  # type: ignore[method-assign]
        else:
            vars(mw.agent).pop("capture", None)

        def call() -> Any:
            result = wsgi(dict(environ), sr)
            for _ in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()

        return call

    return make


MODES = ("off", "null", "on")


def child(api: str, base_uri: str, rounds: int, n: int) -> Dict[str, Any]:
    import moesifpythonrequest
    from moesif_core import Agent, Settings

    settings = Settings.from_mapping(
        {"APPLICATION_ID": "bench-app-id", "BASE_URI": base_uri, "CAPTURE_OUTGOING_REQUESTS": True}
    )
    agent = Agent(settings, user_agent="outgoing-bench/1.0")
    null = NullAgent(settings)

    def outgoing(fn: Callable[[], Any]) -> Callable[[str], Callable[[], Any]]:
        def make(mode: str) -> Callable[[], Any]:
            moesifpythonrequest.stop()
            if mode != "off":
                moesifpythonrequest.start(settings, agent if mode == "on" else null)  # type: ignore[arg-type]
            return fn

        return make

    plan: List[Tuple[str, Callable[[str], Callable[[], Any]]]] = [(label, outgoing(fn)) for label, fn in scenarios(api)]
    incoming = incoming_scenario(base_uri)
    if incoming is not None:
        plan.append(("for comparison, incoming: moesifwsgi around a trivial WSGI app", incoming))
    results = []
    for label, make in plan:
        for mode in MODES:  # warm every path
            _block(make(mode), 100, [])
            agent.flush(10)
        times: Dict[str, List[int]] = {m: [] for m in MODES}
        best: Dict[str, float] = dict.fromkeys(MODES, float("inf"))
        walls = dict.fromkeys(MODES, 0.0)
        for r in range(rounds):
            for mode in MODES[r % 3 :] + MODES[: r % 3]:  # rotate the order: noise hits every mode alike
                block: List[int] = []
                walls[mode] += _block(make(mode), n, block)
                times[mode].extend(block)
                best[mode] = min(best[mode], statistics.median(block))
                agent.flush(10)  # untimed: the next block starts with idle workers
        moesifpythonrequest.stop()
        total = rounds * n
        results.append(
            {
                "scenario": label,
                "median_us": {k: statistics.median(v) / 1000 for k, v in times.items()},
                "mean_us": {k: walls[k] / total * 1e6 for k in walls},
                "best_us": {k: v / 1000 for k, v in best.items()},
            }
        )
    agent.shutdown(10)
    return {"calls": rounds * n, "results": results, "python": sys.version.split()[0], "snapshot": agent.snapshot()}


# -- the parent ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=300, help="calls per block")
    parser.add_argument("--serve-api", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--api", help=argparse.SUPPRESS)
    parser.add_argument("--base-uri", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_api:
        serve_api()
        return
    if args.child:
        print(json.dumps(child(args.api, args.base_uri, args.rounds, args.calls)))
        return

    from moesif_collector import Collector

    me = os.path.abspath(__file__)
    server = subprocess.Popen([sys.executable, me, "--serve-api"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        api = f"http://127.0.0.1:{int(server.stdout.readline())}"
        with Collector(db_path=":memory:") as collector:
            proc = subprocess.run(
                [
                    sys.executable,
                    me,
                    "--child",
                    "--api",
                    api,
                    "--base-uri",
                    collector.url,
                    "--rounds",
                    str(args.rounds),
                    "--calls",
                    str(args.calls),
                ],
                capture_output=True,
                text=True,
                timeout=3600,
            )
            if proc.returncode != 0:
                raise SystemExit(f"the measuring child failed:\n{proc.stderr[-4000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            received = collector.count_events()
    finally:
        server.terminate()
        server.wait(10)

    print(
        f"\nOutgoing calls to a loopback API, {res['calls']} calls per variant per scenario "
        f"(Python {res['python']}); events received by the local collector: {received} "
        f"(agent: {res['snapshot']})\n"
    )
    print(
        "| scenario | statistic | off (us) | on, events dropped (us) | on (us) | added on the calling thread (us) "
        "| added in all (us) | on/off |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in res["results"]:
        for stat in ("median_us", "best_us", "mean_us"):
            off, null, on = r[stat]["off"], r[stat]["null"], r[stat]["on"]
            print(
                f"| {r['scenario']} | {stat.split('_')[0]} | {off:.1f} | {null:.1f} | {on:.1f} | {null - off:.1f} "
                f"| {on - off:.1f} | {on / off:.2f} |"
            )


if __name__ == "__main__":
    main()
