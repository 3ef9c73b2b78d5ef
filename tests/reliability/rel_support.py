"""Shared helpers for the reliability suite: one tiny app per adapter, served for real on 127.0.0.1 the way each
adapter's own tests serve it (their helper modules are imported from ``tests/<adapter>/``).

``served(kind, settings)`` yields a :class:`Served` with ``url`` and the middleware's ``agent``. Every app has
``GET /ping`` (answers ``pong``) and ``POST /echo`` (answers the JSON it got, plus ``resp_secret`` fields used by
the security tests). Kinds: ``wsgi`` (Flask under werkzeug), ``asgi`` (Starlette under uvicorn), ``django`` (Django's
WSGI handler under its threaded server), ``tornado`` (a Tornado ``HTTPServer``), ``aiohttp`` (an aiohttp
``web.Application`` under aiohttp's own server).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
for _sub in ("wsgi", "asgi", "djangoapp", "tornado_adapter", "aiohttp_adapter"):
    _p = str(TESTS / _sub)
    if _p not in sys.path:
        sys.path.append(_p)
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

KINDS = ["wsgi", "asgi", "django", "tornado", "aiohttp"]
APP_ID = "rel-test-app"
#: Every request must answer well under the ingestion timeouts: generous, this is no benchmark.
PROMPT = 2.0


def ensure_django() -> None:
    """Django configured exactly as ``tests/djangoapp/conftest.py`` does (loaded under another module name when
    that folder was not collected), so the two suites can run in any order in one process."""
    from django.conf import settings

    if settings.configured:
        return
    spec = importlib.util.spec_from_file_location("rel_djangoapp_conftest", TESTS / "djangoapp" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collector_on(port: int, tmp_path: Path, db: str = "events.db") -> Any:
    """A real collector started on ``port`` (one the app was already told about), its files under ``tmp_path``."""
    from moesif_collector import Collector

    return Collector(
        port=port,
        db_path=str(tmp_path / db),
        config_file=str(tmp_path / "c.json"),
        rules_file=str(tmp_path / "r.json"),
    ).start()


def settings_for(base_uri: str, **extra: Any) -> Dict[str, Any]:
    s: Dict[str, Any] = {"APPLICATION_ID": APP_ID, "BASE_URI": base_uri, "EVENT_BATCH_TIMEOUT": 0.05}
    s.update(extra)
    return s


class Served:
    def __init__(self, url: str, agent: Any) -> None:
        self.url = url
        self.agent = agent


# -- the apps ------------------------------------------------------------------------------------------------------

RESP_SECRETS = {"Token": "SEKRET-R1", "data": [{"TOKEN": "SEKRET-R2"}, [{"token": "SEKRET-R3"}]]}


def flask_app() -> Any:
    from flask import Flask, request

    app = Flask("rel-flask")

    @app.get("/ping")
    def ping() -> Any:
        return "pong"

    @app.post("/echo")
    def echo() -> Any:
        body = request.get_data()
        return {"len": len(body), **RESP_SECRETS}, 200, {"X-Resp-Secret": "SEKRET-RH"}

    return app


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    async def ping(request: Request) -> Response:
        return PlainTextResponse("pong")

    async def echo(request: Request) -> Response:
        body = await request.body()
        return JSONResponse({"len": len(body), **RESP_SECRETS}, headers={"X-Resp-Secret": "SEKRET-RH"})

    return Starlette(routes=[Route("/ping", ping), Route("/echo", echo, methods=["POST"])])


def tornado_app(log_function: Optional[Callable[..., Any]]) -> Any:
    import tornado.web

    class Ping(tornado.web.RequestHandler):
        def get(self) -> None:
            self.write("pong")

    class Echo(tornado.web.RequestHandler):
        def post(self) -> None:
            self.set_header("X-Resp-Secret", "SEKRET-RH")
            self.write({"len": len(self.request.body), **RESP_SECRETS})

    kwargs: Dict[str, Any] = {"log_function": log_function} if log_function else {}
    return tornado.web.Application([(r"/ping", Ping), (r"/echo", Echo)], **kwargs)


def aiohttp_app(middleware: Any) -> Any:
    from aiohttp import web

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"len": len(body), **RESP_SECRETS}, headers={"X-Resp-Secret": "SEKRET-RH"})

    app = web.Application(middlewares=[middleware])
    app.add_routes([web.get("/ping", ping), web.post("/echo", echo)])
    return app


@contextmanager
def served(kind: str, settings: Dict[str, Any], shutdown: bool = True) -> Iterator[Served]:
    """Serve ``kind``'s app with the middleware built from ``settings``; the agent is shut down at the end."""
    if kind == "wsgi":
        from wsgi_support import serve

        from moesifwsgi import MoesifMiddleware

        app = flask_app()
        mw = MoesifMiddleware(app.wsgi_app, settings)
        app.wsgi_app = mw  # type: ignore[method-assign]
        try:
            with serve(app) as server:
                yield Served(server.url, mw.agent)
        finally:
            if shutdown:
                mw.shutdown(2)
    elif kind == "asgi":
        from asgi_support import UvicornServer

        from moesifasgi import MoesifMiddleware as AsgiMiddleware

        amw = AsgiMiddleware(starlette_app(), settings=settings)
        server = UvicornServer(amw, lifespan="off", access_log=False).start()
        try:
            yield Served(server.url, amw.agent)
        finally:
            server.stop()
            if shutdown:
                amw.shutdown(2)
    elif kind == "django":
        ensure_django()
        from djt_support import serve as django_serve

        import moesifdjango
        from moesifdjango.config import agent_for

        try:
            with django_serve(
                "wsgi",
                settings,
                middleware=["moesifdjango.middleware.moesif_middleware"],
                ROOT_URLCONF="rel_django_urls",
            ) as url:
                yield Served(url, agent_for(settings)[1])
        finally:
            if shutdown:
                moesifdjango.shutdown(timeout=2)
    elif kind == "tornado":
        from tornado_support import TornadoServer

        from moesiftornado import MoesifMiddleware as TornadoMiddleware

        tmw = TornadoMiddleware(settings)
        tserver = TornadoServer(tornado_app(tmw.log_event)).start()
        try:
            yield Served(tserver.url, tmw.agent)
        finally:
            tserver.stop()
            if shutdown:
                tmw.shutdown(2)
    elif kind == "aiohttp":
        from aiohttp_support import AiohttpServer

        from moesif_aiohttp import MoesifMiddleware as AiohttpMiddleware

        hmw = AiohttpMiddleware(settings)
        hserver = AiohttpServer(aiohttp_app(hmw)).start()
        try:
            yield Served(hserver.url, hmw.agent)
        finally:
            hserver.stop()
            if shutdown:
                hmw.shutdown(2)
    else:
        raise ValueError(kind)


# -- driving and counting ------------------------------------------------------------------------------------------


def hit(url: str, tag: str, n: int) -> List[float]:
    """``n`` sequential ``GET /ping?rel=<tag>&i=<k>``; each must answer ``pong`` promptly. Returns the durations."""
    import requests

    took = []
    with requests.Session() as http:
        for i in range(n):
            t0 = time.monotonic()
            r = http.get(f"{url}/ping", params={"rel": tag, "i": str(i)}, timeout=10)
            elapsed = time.monotonic() - t0
            assert r.status_code == 200 and r.text == "pong", (r.status_code, r.text)
            assert elapsed < PROMPT, f"request {i} took {elapsed:.2f}s"
            took.append(elapsed)
    return took


def ids_for(events: List[Dict[str, Any]], tag: str) -> Counter[int]:
    """How many times each ``i`` of run ``tag`` was stored."""
    seen: Counter[int] = Counter()
    for e in events:
        q = parse_qs(urlsplit(e["request"]["uri"]).query)
        if q.get("rel") == [tag]:
            seen[int(q["i"][0])] += 1
    return seen


def wait_all(collector: Any, tag: str, n: int, timeout: float = 20.0) -> Counter[int]:
    """Poll (with a deadline) until every ``i`` in ``range(n)`` of run ``tag`` is stored; the counts."""
    deadline = time.monotonic() + timeout
    while True:
        seen = ids_for(collector.events(), tag)
        if all(seen[i] for i in range(n)):
            return seen
        if time.monotonic() > deadline:
            missing = sorted(set(range(n)) - set(seen))
            raise AssertionError(f"events never arrived for i in {missing} (got {dict(seen)})")
        time.sleep(0.05)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def strict_json(event: Any) -> Any:
    """The event as the wire carries it, through a strict JSON round trip (no NaN, str keys only)."""
    from moesif_core.jsoncodec import dumps

    return json.loads(dumps(event))
