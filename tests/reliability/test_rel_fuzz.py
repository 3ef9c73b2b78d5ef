"""Bad input through each adapter, in process: the response (status, headers but the transaction id, body) is the
bare app's, byte for byte, and the event the worker would send is sensible (strict JSON, status and verb as
answered). The agents' ``capture`` is replaced by a list and events are built with the agent's own builder, which
is what a flush sends. (Tornado is left out: it has no in-process entry point cheap enough to run this many
examples; its HTTP parsing is Tornado's own and its adapter reads only the finished handler. aiohttp is served
in-process through its real request, stream reader and writer, minus the socket.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from rel_fuzz import CALLBACKS, Req, check_event, requests_
from rel_support import ensure_django, settings_for

# derandomize: the same examples every run (no flakiness, no example database)
FUZZ = settings(
    max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)
TID = "X-Moesif-Transaction-Id"
DEAD = "http://127.0.0.1:9"  # never contacted: capture is replaced below, so no worker ever starts


class Recorder:
    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.raws: List[Any] = []
        agent.capture = self.raws.append

    def take(self) -> List[Optional[Dict[str, Any]]]:
        raws, self.raws[:] = list(self.raws), []
        return [self.agent.builder.build(raw) for raw in raws]


def without_tid(headers: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() != TID.lower()]


def tid_of(headers: List[Tuple[str, str]]) -> Optional[str]:
    return next((v for k, v in headers if k.lower() == TID.lower()), None)


# -- WSGI: Flask, called directly with generated environs ---------------------------------------------------------


def flask_anything() -> Any:
    from flask import Flask, request

    app = Flask("rel-fuzz")

    @app.route("/", defaults={"p": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    @app.route("/<path:p>", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    def anything(p: str) -> Any:
        body = request.get_data()
        return {
            "path": request.path,
            "q": sorted(request.args.keys()),
            "len": len(body),
            "json": request.get_json(silent=True) is not None,
            "odd": request.headers.get("X-Odd", ""),
        }, (418 if body[:1] == b"!" else 200)

    return app


def environ(req: Req) -> Dict[str, Any]:
    import io

    from wsgi_support import environ_for

    headers = {"X-Odd": req.odd}
    if req.auth is not None:
        headers["Authorization"] = req.auth
    if req.content_type is not None:
        headers["Content-Type"] = req.content_type
    env = environ_for(req.method, "/" + req.path.decode("latin-1"), req.query.decode("latin-1"), req.body, headers)
    env["wsgi.input"] = io.BytesIO(req.body)
    return env


@pytest.fixture(scope="module")
def wsgi_apps() -> Iterator[Dict[str, Tuple[Any, Recorder]]]:
    from moesifwsgi import MoesifMiddleware

    made = {}
    for name, callbacks in CALLBACKS.items():
        app = flask_anything()
        mw = MoesifMiddleware(app.wsgi_app, settings_for(DEAD, **callbacks))
        app.wsgi_app = mw  # type: ignore[method-assign]
        made[name] = (app, Recorder(mw.agent))
    yield made
    for _, rec in made.values():
        rec.agent.shutdown(0)


@pytest.mark.parametrize("config", list(CALLBACKS))
def test_wsgi_bad_input(wsgi_apps: Dict[str, Tuple[Any, Recorder]], config: str) -> None:
    from wsgi_support import call_wsgi

    bare = flask_anything()
    wrapped, rec = wsgi_apps[config]

    @FUZZ
    @given(req=requests_)
    def run(req: Req) -> None:
        sr0, body0 = call_wsgi(bare, environ(req))
        sr1, body1 = call_wsgi(wrapped, environ(req))
        assert sr1.status == sr0.status
        assert without_tid(sr1.headers) == sr0.headers
        assert b"".join(body1) == b"".join(body0)
        events = rec.take()
        assert len(events) == 1
        check_event(
            events[0], status=int(sr0.status.split()[0]), method=req.method, tid=tid_of(sr1.headers), config=config
        )

    run()


# -- ASGI: Starlette, scope/receive/send driven directly --------------------------------------------------------------


def starlette_anything() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def anything(request: Request) -> Response:
        body = await request.body()
        try:
            parsed = json.loads(body) is not None
        except (ValueError, RecursionError):
            parsed = False
        return JSONResponse(
            {
                "path": request.scope["path"],
                "q": len(request.scope["query_string"]),
                "len": len(body),
                "json": parsed,
                "odd": request.headers.get("x-odd", ""),
            },
            status_code=418 if body[:1] == b"!" else 200,
        )

    return Starlette(
        routes=[Route("/{p:path}", anything, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])]
    )


def scope(req: Req) -> Dict[str, Any]:
    headers = [(b"host", b"testserver"), (b"x-odd", req.odd.encode("latin-1"))]
    if req.auth is not None:
        headers.append((b"authorization", req.auth.encode("latin-1")))
    if req.content_type is not None:
        headers.append((b"content-type", req.content_type.encode("latin-1")))
    headers.append((b"content-length", str(len(req.body)).encode()))
    raw_path = b"/" + req.path
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": req.method,
        "scheme": "http",
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": req.query,
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


async def call_asgi(app: Any, req: Req) -> Tuple[int, List[Tuple[str, str]], bytes]:
    messages = [{"type": "http.request", "body": req.body, "more_body": False}]
    sent: List[Dict[str, Any]] = []

    async def receive() -> Dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # a client that stays connected
        return {"type": "http.disconnect"}

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message)

    await app(scope(req), receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])]
    return int(start["status"]), headers, body


async def call_both(bare: Any, wrapped: Any, raws: List[Any], req: Req) -> Tuple[Any, Any]:
    """The bare app, then the wrapped one; then the loop runs a while for the callbacks that finish after the last
    send, until the wrapped call's capture is in ``raws``."""
    first = await call_asgi(bare, req)
    second = await call_asgi(wrapped, req)
    for _ in range(500):
        if raws:
            break
        await asyncio.sleep(0.001)
    return first, second


@pytest.fixture(scope="module")
def asgi_apps() -> Iterator[Dict[str, Tuple[Any, Recorder]]]:
    from moesifasgi import MoesifMiddleware

    made = {}
    for name, callbacks in CALLBACKS.items():
        mw = MoesifMiddleware(starlette_anything(), settings=settings_for(DEAD, **callbacks))
        made[name] = (mw, Recorder(mw.agent))
    yield made
    for _, rec in made.values():
        rec.agent.shutdown(0)


@pytest.mark.parametrize("config", list(CALLBACKS))
def test_asgi_bad_input(asgi_apps: Dict[str, Tuple[Any, Recorder]], config: str) -> None:
    bare = starlette_anything()
    wrapped, rec = asgi_apps[config]
    loop = asyncio.new_event_loop()

    @FUZZ
    @given(req=requests_)
    def run(req: Req) -> None:
        (s0, h0, b0), (s1, h1, b1) = loop.run_until_complete(call_both(bare, wrapped, rec.raws, req))
        assert (s1, without_tid(h1), b1) == (s0, h0, b0)
        events = rec.take()
        assert len(events) == 1
        check_event(events[0], status=s0, method=req.method, tid=tid_of(h1), config=config)

    try:
        run()
    finally:
        loop.close()


# -- Django: the test client --------------------------------------------------------------------------------------


def django_call(client: Any, req: Req) -> Tuple[int, List[Tuple[str, str]], bytes]:
    extra: Dict[str, Any] = {"QUERY_STRING": req.query.decode("latin-1"), "HTTP_X_ODD": req.odd}
    if req.auth is not None:
        extra["HTTP_AUTHORIZATION"] = req.auth
    r = client.generic(
        req.method, "/" + quote(req.path, safe="/"), data=req.body, content_type=req.content_type or "", **extra
    )
    return r.status_code, list(r.headers.items()), r.content


@pytest.mark.parametrize("config", list(CALLBACKS))
def test_django_bad_input(config: str) -> None:
    ensure_django()
    from django.test import Client
    from django.test.utils import override_settings

    import moesifdjango
    from moesifdjango.config import agent_for

    options = settings_for(DEAD, **CALLBACKS[config])
    with override_settings(ROOT_URLCONF="rel_django_urls", MOESIF_MIDDLEWARE=options):
        with override_settings(MIDDLEWARE=[]):
            bare = Client()
            bare.get("/ping")  # loads its (empty) middleware chain now
        with override_settings(MIDDLEWARE=["moesifdjango.middleware.moesif_middleware"]):
            wrapped = Client()
            rec = Recorder(agent_for(options)[1])
            wrapped.get("/ping")
        rec.take()

        @FUZZ
        @given(req=requests_)
        def run(req: Req) -> None:
            s0, h0, b0 = django_call(bare, req)
            s1, h1, b1 = django_call(wrapped, req)
            assert (s1, without_tid(h1), b1) == (s0, h0, b0)
            events = rec.take()
            assert len(events) == 1
            check_event(events[0], status=s0, method=req.method, tid=tid_of(h1), config=config)

        try:
            run()
        finally:
            moesifdjango.shutdown(timeout=0)


# -- aiohttp: web.Application served in-process (aiohttp_support.call_in_process) ---------------------------------


def aiohttp_anything(middleware: Any = None) -> Any:
    from aiohttp import web

    async def anything(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            parsed = json.loads(body) is not None
        except (ValueError, RecursionError):
            parsed = False
        return web.json_response(
            {
                "path": request.raw_path,
                "q": len(request.query_string),
                "len": len(body),
                "json": parsed,
                "odd": request.headers.get("X-Odd", ""),
            },
            status=418 if body[:1] == b"!" else 200,
        )

    app = web.Application(middlewares=[middleware] if middleware is not None else [])
    app.router.add_route("*", "/{p:.*}", anything)
    app.freeze()
    return app


def aiohttp_parts(req: Req) -> Tuple[str, Dict[str, str]]:
    path = "/" + req.path.decode("latin-1")
    if req.query:
        path += "?" + req.query.decode("latin-1")
    headers = {"Host": "testserver", "X-Odd": req.odd, "Content-Length": str(len(req.body))}
    if req.auth is not None:
        headers["Authorization"] = req.auth
    if req.content_type is not None:
        headers["Content-Type"] = req.content_type
    return path, headers


def sent_headers(lines: List[bytes]) -> List[bytes]:
    """The header lines but the date (aiohttp writes the current second) and the transaction id."""
    return [h for h in lines if not h.lower().startswith((b"date:", TID.lower().encode() + b":"))]


@pytest.mark.parametrize("config", list(CALLBACKS))
def test_aiohttp_bad_input(config: str) -> None:
    from aiohttp_support import call_in_process
    from hypothesis import reject

    from moesif_aiohttp import MoesifMiddleware

    mw = MoesifMiddleware(settings_for(DEAD, **CALLBACKS[config]))
    rec = Recorder(mw.agent)
    bare, wrapped = aiohttp_anything(), aiohttp_anything(mw)
    loop = asyncio.new_event_loop()

    @FUZZ
    @given(req=requests_)
    def run(req: Req) -> None:
        path, headers = aiohttp_parts(req)
        try:
            first = loop.run_until_complete(call_in_process(bare, req.method, path, headers, req.body))
        except ValueError:  # a path or header aiohttp's own request refuses to build: it reaches no app
            reject()
        second = loop.run_until_complete(call_in_process(wrapped, req.method, path, headers, req.body))
        assert (second[0], sent_headers(second[1]), second[2]) == (first[0], sent_headers(first[1]), first[2])
        tid = next((h.split(b":", 1)[1].strip().decode() for h in second[1] if h.lower().startswith(b"x-moesif")), None)
        events = rec.take()
        assert len(events) == 1
        check_event(events[0], status=int(first[0].split()[1]), method=req.method, tid=tid, config=config)

    try:
        run()
    finally:
        loop.close()
        mw.agent.shutdown(0)
