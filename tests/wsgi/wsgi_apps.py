"""The same small API written in Flask, Bottle and Pyramid, for the end-to-end tests.

Routes (every framework):

- ``POST /echo``: reads the body, answers JSON ``{"len": n, "token": "resp-secret", "echo": <parsed JSON>}``.
- ``POST /form``: a form post (``name=...``), answers an HTML page.
- ``POST /upload``: reads the body in 64 KiB reads, answers ``{"len": n}``.
- ``GET /stream?size=N&chunk=C``: ``N`` bytes of a fixed pattern, streamed in chunks of ``C`` from a generator.
- ``GET /items/<id>``: JSON ``{"id": id}`` (HEAD works too).
- ``GET /boom``: raises ``RuntimeError``.
- ``GET /pid?sleep=S``: sleeps ``S`` seconds, answers ``{"pid": ...}`` (the fork test).
- ``GET /_maxrss``: the process's peak RSS in KiB (the memory test).
- ``GET /call?url=U`` (Flask only): calls ``U`` with ``requests`` (the outgoing-capture test).
- ``GET /_agent?sleep=S`` (Flask only, under :func:`serving_app`): sleeps ``S`` seconds, answers the serving
  process's pid, agent counters and config.
Anything else is a 404.
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any, Callable, Dict, Iterator, List

PATTERN = bytes(range(256)) * 256  # 64 KiB, every byte value
_BIG = PATTERN * 17  # slices of up to 1 MiB come from here without copying the pattern again


def stream_bytes(size: int, chunk: int) -> Iterator[bytes]:
    """``size`` bytes of :data:`PATTERN` repeated, in chunks of ``chunk`` (produced lazily)."""
    sent = 0
    while sent < size:
        n = min(chunk, size - sent)
        start = sent % len(PATTERN)
        if start + n <= len(_BIG):
            yield _BIG[start : start + n]
        else:
            yield (PATTERN * ((start + n) // len(PATTERN) + 1))[start : start + n]
        sent += n


def expected_stream(size: int) -> bytes:
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _read_all(read: Callable[[int], bytes]) -> int:
    total = 0
    while True:
        data = read(65536)
        if not data:
            return total
        total += len(data)


def flask_app() -> Any:
    from flask import Flask, Response, request

    app = Flask("wsgi-e2e")

    @app.post("/echo")
    def echo() -> Any:
        data = request.get_data()
        return {"len": len(data), "token": "resp-secret", "echo": request.get_json(silent=True)}

    @app.post("/form")
    def form() -> Any:
        return f"<p>hello {request.form.get('name', '')}</p>"

    @app.post("/upload")
    def upload() -> Any:
        return {"len": _read_all(request.stream.read)}

    @app.get("/stream")
    def stream() -> Any:
        size, chunk = int(request.args["size"]), int(request.args.get("chunk", 65536))
        return Response(
            stream_bytes(size, chunk), mimetype="application/octet-stream", headers={"Content-Length": str(size)}
        )

    @app.get("/items/<item>")
    def item(item: str) -> Any:
        return {"id": item}

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("boom")

    @app.get("/pid")
    def pid() -> Any:
        time.sleep(float(request.args.get("sleep", 0)))
        return {"pid": os.getpid()}

    @app.get("/_maxrss")
    def rss() -> Any:
        return {"maxrss_kib": maxrss_kib()}

    @app.get("/_agent")
    def agent() -> Any:
        time.sleep(float(request.args.get("sleep", 0)))
        mw = SERVING_MW[0]
        return {
            "pid": os.getpid(),
            "snapshot": mw.agent.snapshot(),
            "sample_rate": mw.agent.remote.current()[0].sample_rate,
            "fetches": mw.agent.remote.fetches,
        }

    @app.get("/call")
    def call() -> Any:
        import requests

        r = requests.get(request.args["url"], timeout=10)
        return {"status": r.status_code}

    return app


def bottle_app() -> Any:
    import bottle

    app = bottle.Bottle()

    def as_json(value: Dict[str, Any]) -> str:
        bottle.response.content_type = "application/json"
        return json.dumps(value)

    @app.post("/echo")
    def echo() -> Any:
        data = bottle.request.body.read()
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        return as_json({"len": len(data), "token": "resp-secret", "echo": parsed})

    @app.post("/form")
    def form() -> Any:
        return f"<p>hello {bottle.request.forms.get('name', '')}</p>"

    @app.post("/upload")
    def upload() -> Any:
        return as_json({"len": _read_all(bottle.request.body.read)})

    @app.get("/stream")
    def stream() -> Any:
        size, chunk = int(bottle.request.query["size"]), int(bottle.request.query.get("chunk", 65536))
        bottle.response.content_type = "application/octet-stream"
        bottle.response.set_header("Content-Length", str(size))
        return stream_bytes(size, chunk)

    @app.get("/items/<item>")
    def item(item: str) -> Any:
        return as_json({"id": item})

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("boom")

    @app.get("/pid")
    def pid() -> Any:
        time.sleep(float(bottle.request.query.get("sleep", 0)))
        return as_json({"pid": os.getpid()})

    @app.get("/_maxrss")
    def rss() -> Any:
        return as_json({"maxrss_kib": maxrss_kib()})

    return app


def pyramid_app() -> Any:
    from pyramid.config import Configurator
    from pyramid.response import Response

    def echo(request: Any) -> Any:
        data = request.body
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        return {"len": len(data), "token": "resp-secret", "echo": parsed}

    def form(request: Any) -> Any:
        return Response(f"<p>hello {request.POST.get('name', '')}</p>", content_type="text/html")

    def upload(request: Any) -> Any:
        return {"len": _read_all(request.body_file.read)}

    def stream(request: Any) -> Any:
        size, chunk = int(request.GET["size"]), int(request.GET.get("chunk", 65536))
        resp = Response(app_iter=stream_bytes(size, chunk), content_type="application/octet-stream")
        resp.content_length = size
        return resp

    def item(request: Any) -> Any:
        return {"id": request.matchdict["item"]}

    def boom(request: Any) -> Any:
        raise RuntimeError("boom")

    def pid(request: Any) -> Any:
        time.sleep(float(request.GET.get("sleep", 0)))
        return {"pid": os.getpid()}

    def rss(request: Any) -> Any:
        return {"maxrss_kib": maxrss_kib()}

    with Configurator() as config:
        for name, path, view, method, renderer in [
            ("echo", "/echo", echo, "POST", "json"),
            ("form", "/form", form, "POST", None),
            ("upload", "/upload", upload, "POST", "json"),
            ("stream", "/stream", stream, "GET", None),
            ("item", "/items/{item}", item, ("GET", "HEAD"), "json"),
            ("boom", "/boom", boom, "GET", None),
            ("pid", "/pid", pid, "GET", "json"),
            ("rss", "/_maxrss", rss, "GET", "json"),
        ]:
            config.add_route(name, path, request_method=method)
            config.add_view(view, route_name=name, renderer=renderer)
        return config.make_wsgi_app()


FRAMEWORKS: Dict[str, Callable[[], Any]] = {"flask": flask_app, "bottle": bottle_app, "pyramid": pyramid_app}


def wrap(framework: str, app: Any, settings: Dict[str, Any]) -> Any:
    """Wrap ``app`` the way each framework's README says; returns ``(wsgi_callable, middleware)``."""
    from moesifwsgi import MoesifMiddleware

    if framework == "flask":
        app.wsgi_app = MoesifMiddleware(app.wsgi_app, settings)
        return app, app.wsgi_app
    mw = MoesifMiddleware(app, settings)
    return mw, mw


#: the middleware :func:`serving_app` built (Flask's ``/_agent`` reports on it)
SERVING_MW: List[Any] = []


def serving_app() -> Any:
    """The app a subprocess server runs (gunicorn ``wsgi_apps:serving_app()``): framework and settings from the
    environment (``WSGI_FRAMEWORK``, ``MOESIF_BASE_URI``, ``MOESIF_WRAP`` = ``0`` for the bare app,
    ``MOESIF_WAIT_CONFIG`` = ``1`` to wait for the config at start-up, as an app wanting rules from its first request
    does)."""
    framework = os.environ.get("WSGI_FRAMEWORK", "flask")
    app = FRAMEWORKS[framework]()
    if os.environ.get("MOESIF_WRAP", "1") == "0":
        return app
    settings: Dict[str, Any] = {
        "APPLICATION_ID": "wsgi-e2e",
        "BASE_URI": os.environ["MOESIF_BASE_URI"],
        "EVENT_BATCH_TIMEOUT": 0.05,
        "GET_METADATA": lambda app, environ: {"pid": os.getpid()},
        "CAPTURE_OUTGOING_REQUESTS": os.environ.get("MOESIF_CAPTURE_OUTGOING") == "1",
    }
    wrapped, mw = wrap(framework, app, settings)
    SERVING_MW[:] = [mw]
    if os.environ.get("MOESIF_WAIT_CONFIG") == "1":
        mw.agent.wait_for_config(5)
    return wrapped
