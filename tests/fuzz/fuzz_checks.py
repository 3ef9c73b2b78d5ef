"""One check per fuzz target: run one generated example against real parts, raise ``AssertionError`` if the
outcome is wrong. Used by the deep session (``fuzz_deep.py``, ``nox -s fuzz``) and by the default suite, which
replays every kept example (``test_fuzz_regressions.py``).

Targets, and what must hold for every input:

- ``wsgi`` (Flask), ``asgi`` (Starlette), ``django``, ``tornado``, ``aiohttp``: the response is the bare app's
  (status, headers but the transaction id, body), and the one event is strict JSON with the status and verb
  answered; under each callback configuration of ``rel_fuzz.CALLBACKS`` (none, raising, wrong types).
- ``outgoing``: a ``requests`` or ``httpx`` call gets exactly what the server answered, and the event is sane.
- ``ingest``: the collector's ``/v1`` answers a 2xx/4xx/503 with a JSON error naming the problem (never a 500,
  never a hang), with any framing (length, chunked, hostile chunk-size lines); what it stored is shown by the
  page's JSON as strict JSON.
- ``page``: the page's JSON endpoints answer 200/400/404 with strict JSON for any query.

Parts are built once per process and cached (agents send nowhere: their ``capture`` is replaced by a list and the
event is built with the agent's own builder, which is what a flush sends).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import http.client
import json
import socket
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote, urlencode

HERE = Path(__file__).resolve().parent
for _sub in ("reliability", "wsgi", "asgi", "djangoapp", "tornado_adapter", "aiohttp_adapter"):
    _p = str(HERE.parent / _sub)
    if _p not in sys.path:
        sys.path.append(_p)

from rel_fuzz import CALLBACKS, Req, check_event  # noqa: E402
from rel_support import ensure_django, settings_for, strict_json  # noqa: E402

DEAD = "http://127.0.0.1:9"  # never contacted: capture is replaced by a list
TID = "x-moesif-transaction-id"
#: How to take down what the cached builders started (servers, capture, agents), newest first.
_TEARDOWN: List[Any] = []


def release() -> None:
    """Stop every server, agent and patch the checks started, and forget them (they are rebuilt on next use)."""
    while _TEARDOWN:
        try:
            _TEARDOWN.pop()()
        except Exception:  # noqa: BLE001 - take down the rest regardless
            pass
    for cached in (_wsgi, _asgi, _django, _tornado, _aiohttp, _outgoing, _collector):
        cached.cache_clear()


def _without_tid(headers: List[Tuple[str, str]], *also: str) -> List[Tuple[str, str]]:
    drop = {TID, *also}
    return [(k, v) for k, v in headers if k.lower() not in drop]


def _tid(headers: List[Tuple[str, str]]) -> Optional[str]:
    return next((v for k, v in headers if k.lower() == TID), None)


class Recorder:
    """Takes the agent's captures instead of queueing them; ``take`` builds them as a flush would."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.raws: List[Any] = []
        agent.capture = self.raws.append

    def take(self, expect: int = 1, wait: float = 0.0) -> List[Optional[Dict[str, Any]]]:
        deadline = time.monotonic() + wait
        while len(self.raws) < expect and time.monotonic() < deadline:
            time.sleep(0.001)
        raws, self.raws[:] = list(self.raws), []
        return [self.agent.builder.build(raw) for raw in raws]

    def take_for(self, tid: str, wait: float) -> List[Optional[Dict[str, Any]]]:
        """The events of the call answered with transaction id ``tid``, waiting up to ``wait`` s for one. (Tornado
        logs a call after its response is written, so an earlier call's event may arrive late: it is dropped.)"""
        deadline = time.monotonic() + wait
        found: List[Optional[Dict[str, Any]]] = []
        while not found and time.monotonic() < deadline:
            found = [e for e in self.take(0) if e is not None and e.get("transaction_id") == tid]
            if not found:
                time.sleep(0.001)
        return found


def _check_one(
    events: List[Optional[Dict[str, Any]]], status: int, method: str, tid: Optional[str], config: str
) -> None:
    assert len(events) == 1, f"{len(events)} events for one call"
    check_event(events[0], status=status, method=method, tid=tid, config=config)


# -- WSGI, ASGI, Django: the reliability suite's apps and drivers ---------------------------------------------------


@cache
def _wsgi(config: str) -> Tuple[Any, Any, Recorder]:
    from test_rel_fuzz import flask_anything

    from moesifwsgi import MoesifMiddleware

    bare, app = flask_anything(), flask_anything()
    mw = MoesifMiddleware(app.wsgi_app, settings_for(DEAD, **CALLBACKS[config]))
    app.wsgi_app = mw
    _TEARDOWN.append(lambda: mw.agent.shutdown(0))
    return bare, app, Recorder(mw.agent)


def check_wsgi(config: str, req: Req) -> None:
    from test_rel_fuzz import environ
    from wsgi_support import call_wsgi

    bare, wrapped, rec = _wsgi(config)
    sr0, body0 = call_wsgi(bare, environ(req))
    sr1, body1 = call_wsgi(wrapped, environ(req))
    assert (sr1.status, _without_tid(sr1.headers), b"".join(body1)) == (sr0.status, sr0.headers, b"".join(body0))
    _check_one(rec.take(), int(sr0.status.split()[0]), req.method, _tid(sr1.headers), config)


@cache
def _asgi(config: str) -> Tuple[Any, Any, Recorder, asyncio.AbstractEventLoop]:
    from test_rel_fuzz import starlette_anything

    from moesifasgi import MoesifMiddleware

    mw = MoesifMiddleware(starlette_anything(), settings=settings_for(DEAD, **CALLBACKS[config]))
    loop = asyncio.new_event_loop()
    _TEARDOWN.extend([loop.close, lambda: mw.agent.shutdown(0)])
    return starlette_anything(), mw, Recorder(mw.agent), loop


def check_asgi(config: str, req: Req) -> None:
    from test_rel_fuzz import call_both

    bare, wrapped, rec, loop = _asgi(config)
    (s0, h0, b0), (s1, h1, b1) = loop.run_until_complete(call_both(bare, wrapped, rec.raws, req))
    assert (s1, _without_tid(h1), b1) == (s0, h0, b0)
    _check_one(rec.take(), s0, req.method, _tid(h1), config)


@cache
def _django(config: str) -> Tuple[Any, Any, Recorder, Dict[str, Any]]:
    ensure_django()
    from django.test import Client
    from django.test.utils import override_settings

    from moesifdjango.config import agent_for

    options = settings_for(DEAD, **CALLBACKS[config])
    with override_settings(ROOT_URLCONF="rel_django_urls", MOESIF_MIDDLEWARE=options):
        with override_settings(MIDDLEWARE=[]):
            bare = Client()
            bare.get("/ping")  # loads its (empty) middleware chain now, kept by its handler
        with override_settings(MIDDLEWARE=["moesifdjango.middleware.moesif_middleware"]):
            wrapped = Client()
            rec = Recorder(agent_for(options)[1])
            wrapped.get("/ping")
        rec.take()
    _TEARDOWN.append(lambda: rec.agent.shutdown(0))
    return bare, wrapped, rec, options


def check_django(config: str, req: Req) -> None:
    from django.test.utils import override_settings
    from test_rel_fuzz import django_call

    bare, wrapped, rec, options = _django(config)
    with override_settings(ROOT_URLCONF="rel_django_urls", MOESIF_MIDDLEWARE=options):
        s0, h0, b0 = django_call(bare, req)
        s1, h1, b1 = django_call(wrapped, req)
    assert (s1, _without_tid(h1), b1) == (s0, h0, b0)
    _check_one(rec.take(), s0, req.method, _tid(h1), config)


# -- aiohttp: the reliability suite's app, served in process (aiohttp's real request, reader and writer) -----------


@cache
def _aiohttp(config: str) -> Tuple[Any, Any, Recorder, asyncio.AbstractEventLoop]:
    from test_rel_fuzz import aiohttp_anything

    from moesif_aiohttp import MoesifMiddleware

    mw = MoesifMiddleware(settings_for(DEAD, **CALLBACKS[config]))
    loop = asyncio.new_event_loop()
    _TEARDOWN.extend([loop.close, lambda: mw.agent.shutdown(0)])
    return aiohttp_anything(), aiohttp_anything(mw), Recorder(mw.agent), loop


def check_aiohttp(config: str, req: Req) -> None:
    from aiohttp_support import call_in_process
    from test_rel_fuzz import TID as TID_HEADER
    from test_rel_fuzz import aiohttp_parts, sent_headers

    bare, wrapped, rec, loop = _aiohttp(config)
    path, headers = aiohttp_parts(req)
    try:
        first = loop.run_until_complete(call_in_process(bare, req.method, path, headers, req.body))
    except ValueError:  # a path or header aiohttp's own request refuses to build: it reaches no app
        return
    second = loop.run_until_complete(call_in_process(wrapped, req.method, path, headers, req.body))
    assert (second[0], sent_headers(second[1]), second[2]) == (first[0], sent_headers(first[1]), first[2])
    prefix = TID_HEADER.lower().encode() + b":"
    tid = next((h.split(b":", 1)[1].strip().decode() for h in second[1] if h.lower().startswith(prefix)), None)
    _check_one(rec.take(), int(first[0].split()[1]), req.method, tid, config)


# -- Tornado: a real HTTPServer each (bare and wrapped), raw HTTP/1.1 over loopback -----------------------------------


def _tornado_app(log_function: Any = None) -> Any:
    import tornado.web

    class Anything(tornado.web.RequestHandler):
        def _answer(self, *args: Any) -> None:
            body = self.request.body
            self.set_status(418 if body[:1] == b"!" else 200)
            self.set_header("Content-Type", "application/json")
            self.finish(
                json.dumps({"path": self.request.path, "len": len(body), "odd": self.request.headers.get("X-Odd", "")})
            )

        get = post = put = patch = delete = options = _answer

    settings: Dict[str, Any] = {"log_function": log_function} if log_function else {}
    return tornado.web.Application([(r"/.*", Anything)], **settings)


@cache
def _tornado(config: str) -> Tuple[int, int, Recorder]:
    from tornado_support import TornadoServer

    from moesiftornado import MoesifMiddleware

    mw = MoesifMiddleware(settings_for(DEAD, **CALLBACKS[config]))
    bare = TornadoServer(_tornado_app()).start()
    wrapped = TornadoServer(_tornado_app(mw.log_event)).start()
    _TEARDOWN.extend([bare.stop, wrapped.stop, lambda: mw.agent.shutdown(0)])
    return bare.port, wrapped.port, Recorder(mw.agent)


def _raw_http(
    port: int, head: bytes, body: bytes, half_close: bool = False
) -> Tuple[int, List[Tuple[str, str]], bytes]:
    """One request on a new connection; ``half_close``: then shut the sending side, so a server waiting for more of
    an incomplete body (a chunk size larger than what follows) sees the end at once instead of a stall."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(head + body)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # broken pipe, reset, not connected
            pass  # answered (and closed) before the whole request was sent: the answer is there to read
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        data = resp.read()
        return resp.status, [(k, v) for k, v in resp.getheaders()], data


def _request_head(req: Req, port: int) -> bytes:
    target = "/" + quote(req.path, safe="/") + ("?" + quote(req.query, safe="=&") if req.query else "")
    lines = [f"{req.method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"X-Odd: {req.odd}", "Connection: close"]
    if req.auth is not None:
        lines.append(f"Authorization: {req.auth}")
    if req.content_type is not None:
        lines.append(f"Content-Type: {req.content_type}")
    lines.append(f"Content-Length: {len(req.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def check_tornado(config: str, req: Req) -> None:
    bare_port, wrapped_port, rec = _tornado(config)
    s0, h0, b0 = _raw_http(bare_port, _request_head(req, bare_port), req.body)
    s1, h1, b1 = _raw_http(wrapped_port, _request_head(req, wrapped_port), req.body)
    assert (s1, _without_tid(h1, "date"), b1) == (s0, _without_tid(h0, "date"), b0)
    tid = _tid(h1)
    if tid is not None:  # Tornado answers some malformed requests itself, before any handler: no id, no event
        _check_one(rec.take_for(tid, wait=5.0), s0, req.method, tid, config)


# -- outgoing: requests and httpx against a loopback API that answers what the example says ------------------------


@dataclass
class OutReq:
    client: str  # "requests" | "httpx"
    method: str
    path: bytes
    odd: str
    body: bytes
    status: int
    content_type: str
    reply: bytes


@cache
def _outgoing() -> Tuple[int, Recorder, Any]:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    import moesifpythonrequest
    from moesifpythonrequest.start_capture.start_capture import StartCapture

    class Handler(BaseHTTPRequestHandler):
        """Answers with the status, content type and body encoded in the request's ``X-Reply`` header."""

        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _route(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, ctype, reply = json.loads(base64.b64decode(self.headers["X-Reply"]))
            data = base64.b64decode(reply)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD" and status >= 200 and status not in (204, 304):
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _route

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _TEARDOWN.extend([server.server_close, server.shutdown, lambda: moesifpythonrequest.stop(timeout=0)])
    options = {"APPLICATION_ID": "fuzz-out", "BASE_URI": DEAD, "EVENT_BATCH_TIMEOUT": 0.05}
    assert StartCapture().start_capture_outgoing(options) is True
    agent = moesifpythonrequest.get_agent()
    assert agent is not None
    client = httpx.Client(timeout=10)  # one client: each new one loads the CA bundle (~60 ms)
    _TEARDOWN.append(client.close)
    return int(server.server_address[1]), Recorder(agent), client


_CALLS = iter(range(1, 1 << 62))


def check_outgoing(req: OutReq) -> None:
    import requests

    port, rec, client = _outgoing()
    url = f"http://127.0.0.1:{port}/" + quote(req.path, safe="/")
    spec = json.dumps([req.status, req.content_type, base64.b64encode(req.reply).decode()]).encode()
    call = str(next(_CALLS))  # finds this call's event among late ones of earlier calls
    headers = {"X-Reply": base64.b64encode(spec).decode(), "X-Odd": req.odd, "X-Fuzz-Call": call}
    data = req.body if req.method not in ("GET", "OPTIONS") else None
    expected_body = req.reply if req.status >= 200 and req.status not in (204, 304) else b""
    if req.client == "requests":
        with requests.request(req.method, url, data=data, headers=headers, timeout=10, allow_redirects=False) as r:
            got = (r.status_code, r.headers.get("Content-Type"), r.content)
    else:
        hr = client.request(req.method, url, content=data, headers=headers)
        got = (hr.status_code, hr.headers.get("content-type"), hr.content)
    assert got == (req.status, req.content_type, expected_body)
    deadline = time.monotonic() + 5.0
    mine: List[Dict[str, Any]] = []
    while not mine and time.monotonic() < deadline:
        events = [strict_json(e) for e in rec.take(0) if e is not None]
        mine = [e for e in events if (e["request"].get("headers") or {}).get("X-Fuzz-Call") == call]
        time.sleep(0 if mine else 0.001)
    assert len(mine) == 1, f"{len(mine)} events for one call"
    wire = mine[0]
    assert wire["response"]["status"] == req.status and wire["request"]["verb"] == req.method
    assert wire["direction"] == "Outgoing"


# -- the collector: /v1 ingestion and the page's JSON ---------------------------------------------------------------

INGEST_OK = {200, 201, 204, 400, 401, 404, 405, 408, 411, 413, 415, 503}


@dataclass
class IngestReq:
    path: str
    method: str
    app_id: Optional[str]
    content_type: Optional[str]
    encoding: str  # "identity" | "gzip" | "deflate" | anything else (sent as is)
    framing: str  # "length" | "chunked" | a raw chunk-size line
    body: bytes


@cache
def _collector() -> Any:
    from moesif_collector import Collector

    collector = Collector(max_body=256 * 1024).start()
    _TEARDOWN.append(collector.stop)
    return collector


def _strict(data: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in a JSON answer")

    return json.loads(data, parse_constant=refuse)


def _collector_call(method: str, target: str, headers: Dict[str, str], body: bytes, framing: str) -> Tuple[int, bytes]:
    collector = _collector()
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{collector.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    else:
        lines.append("Transfer-Encoding: chunked")
        if framing == "chunked":
            payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        else:
            payload = framing.encode("latin-1") + b"\r\n" + body + b"\r\n0\r\n\r\n"
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    status, _, data = _raw_http(collector.port, head, payload, half_close=True)
    return status, data


def _encode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    return body


def check_ingest(req: IngestReq) -> None:
    collector = _collector()
    before = collector.count_events()
    headers: Dict[str, str] = {}
    if req.app_id is not None:
        headers["X-Moesif-Application-Id"] = req.app_id
    if req.content_type is not None:
        headers["Content-Type"] = req.content_type
    if req.encoding != "identity":
        headers["Content-Encoding"] = req.encoding
    status, data = _collector_call(req.method, req.path, headers, _encode(req.body, req.encoding), req.framing)
    assert status in INGEST_OK, (status, data[:300])
    if status == 204:  # the CORS preflight
        assert req.method == "OPTIONS" and data == b""
        return
    answer = _strict(data)
    if status >= 400:
        assert isinstance(answer.get("message"), str) and answer["message"], answer
    stored = collector.count_events() - before
    assert stored == 0 or (status == 201 and req.path.startswith("/v1/events")), (status, stored)
    if stored:  # the page's JSON shows what was stored
        newest = collector.calls(limit=1)[0]["id"]
        page_status, page = _collector_call("GET", f"/api/calls/{newest}", {}, b"", "length")
        assert page_status == 200, page[:300]
        _strict(page)


@dataclass
class PageReq:
    path: str
    params: List[Tuple[str, str]]


def check_page(req: PageReq) -> None:
    query = urlencode(req.params)
    status, data = _collector_call("GET", quote(req.path, safe="/") + ("?" + query if query else ""), {}, b"", "length")
    assert status in (200, 400, 404), (status, data[:300])
    _strict(data)


CHECKS = {
    "wsgi": check_wsgi,
    "asgi": check_asgi,
    "django": check_django,
    "tornado": check_tornado,
    "aiohttp": check_aiohttp,
    "outgoing": check_outgoing,
    "ingest": check_ingest,
    "page": check_page,
}
#: The example type of each target (the adapters' examples carry a callback configuration too).
EXAMPLE_TYPES = {"outgoing": OutReq, "ingest": IngestReq, "page": PageReq}
ADAPTERS = ("wsgi", "asgi", "django", "tornado", "aiohttp")


def run_check(target: str, config: Optional[str], example: Any) -> None:
    """Run one example against its target (``config`` for the adapters, ``None`` for the others)."""
    check = CHECKS[target]
    if target in ADAPTERS:
        check(config, example)
    else:
        check(example)


# -- keeping examples ------------------------------------------------------------------------------------------------


def to_json(value: Any) -> Any:
    """An example as JSON: dataclasses as objects, bytes as ``{"b64": ...}``."""
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if hasattr(value, "__dataclass_fields__"):
        return {name: to_json(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def from_json(target: str, doc: Dict[str, Any]) -> Any:
    """Rebuild a kept example of ``target``."""
    kind = EXAMPLE_TYPES.get(target, Req)

    def value(v: Any) -> Any:
        if isinstance(v, dict) and set(v) == {"b64"}:
            return base64.b64decode(v["b64"])
        if isinstance(v, list):
            return [tuple(value(x)) if isinstance(x, list) else value(x) for x in v]
        return v

    return kind(**{k: value(v) for k, v in doc.items()})
