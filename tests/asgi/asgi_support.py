"""Helpers for the moesifasgi tests: a real uvicorn server on 127.0.0.1 (in a thread), the demo apps (Starlette and
FastAPI, same routes), and checks of events against docs/wire.md. (Not named ``conftest``: test modules import it by
this unique name.)"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Callable, Dict, Optional

import anyio.to_thread
import uvicorn
from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi import Request as FastAPIRequest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

APP_ID = "asgi-test-app"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

EVENT_KEYS = {
    "request",
    "response",
    "user_id",
    "company_id",
    "session_token",
    "tags",
    "metadata",
    "direction",
    "weight",
    "blocked_by",
    "transaction_id",
}
REQUEST_KEYS = {"time", "uri", "verb", "api_version", "ip_address", "headers", "body", "transfer_encoding"}
RESPONSE_KEYS = {"time", "status", "ip_address", "headers", "body", "transfer_encoding"}

MB = 1024 * 1024
WAIT = 10.0  # seconds any gate or poll waits at most


def parse_time(value: str) -> datetime:
    assert TIME_RE.match(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)


def check_shape(event: Dict[str, Any]) -> None:
    """Every key of docs/wire.md present; times in the wire format, UTC, response not before request, near now."""
    assert set(event) == EVENT_KEYS, set(event) ^ EVENT_KEYS
    assert set(event["request"]) == REQUEST_KEYS
    assert set(event["response"]) == RESPONSE_KEYS
    t_req = parse_time(event["request"]["time"])
    t_resp = parse_time(event["response"]["time"])
    assert t_req <= t_resp
    now = datetime.now(timezone.utc)
    assert now - timedelta(minutes=2) < t_req <= now + timedelta(seconds=1)
    assert event["direction"] == "Incoming"


class Gates:
    """``threading.Event`` objects shared by a test (client side) and the app (server loop), by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: Dict[str, threading.Event] = {}
        self.values: Dict[str, Any] = {}

    def __getitem__(self, name: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(name, threading.Event())

    async def wait(self, name: str, timeout: float = WAIT) -> bool:
        """Wait for a gate from the app without blocking its event loop."""
        return await anyio.to_thread.run_sync(self[name].wait, timeout)


class UvicornServer:
    """``app`` served by uvicorn on 127.0.0.1 (a free port) in a daemon thread, with its own event loop."""

    def __init__(self, app: Any, **config: Any) -> None:
        config.setdefault("log_level", "warning")
        config.setdefault("lifespan", "on")
        self.config = uvicorn.Config(app, host="127.0.0.1", port=0, **config)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test-server", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UvicornServer:
        self.thread.start()
        deadline = time.monotonic() + WAIT
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn exited during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(WAIT)


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# -- the demo apps: the same routes on Starlette and on FastAPI ------------------------------------------------------


async def _sse(gates: Gates) -> AsyncIterator[bytes]:
    yield b"data: first\n\n"
    if not await gates.wait("sse-release"):
        return
    gates["sse-last-produced"].set()
    yield b"data: last\n\n"


async def _endless(gates: Gates) -> AsyncIterator[bytes]:
    n = 0
    try:
        while True:
            yield b"x" * 1024
            n += 1
            if n == 10:
                gates["endless-started"].set()
            await asyncio.sleep(0.001)
    finally:
        gates.values["endless-chunks"] = n
        gates["endless-ended"].set()


async def _big(size: int) -> AsyncIterator[bytes]:
    chunk = b"0123456789abcdef" * 4096  # 64 KiB
    sent = 0
    while sent < size:
        piece = chunk[: min(len(chunk), size - sent)]
        sent += len(piece)
        yield piece


def starlette_app(gates: Gates) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        request.state.seen = "echo"
        return JSONResponse({"len": len(body)}, headers={"X-Case": "echo"})

    async def form(request: Request) -> Response:
        data = await request.form()
        return PlainTextResponse("fields: " + ",".join(sorted(str(k) for k in data.keys())))

    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    async def item(request: Request) -> Response:
        request.state.user = "state-user"
        return JSONResponse({"item": request.path_params["item_id"]})

    async def sse(request: Request) -> Response:
        return StreamingResponse(_sse(gates), media_type="text/event-stream")

    async def endless(request: Request) -> Response:
        return StreamingResponse(_endless(gates), media_type="application/octet-stream")

    async def big(request: Request) -> Response:
        return StreamingResponse(
            _big(int(request.query_params.get("mb", "50")) * MB), media_type="application/octet-stream"
        )

    async def boom(request: Request) -> Response:
        raise ValueError("boom")

    async def background(request: Request) -> Response:
        return PlainTextResponse("queued", background=BackgroundTask(gates["background-ran"].set))

    async def wait_disconnect(request: Request) -> Response:
        gates["waiting-for-disconnect"].set()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gates["app-saw-disconnect"].set()
                break
        return PlainTextResponse("gone")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            text = await websocket.receive_text()
            if text == "bye":
                await websocket.close()
                return
            await websocket.send_text("echo: " + text)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gates["lifespan-startup"].set()
        yield
        gates["lifespan-shutdown"].set()

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["POST", "PUT"]),
            Route("/form", form, methods=["POST"]),
            Route("/hello", hello, methods=["GET", "HEAD"]),
            Route("/items/{item_id}", item),
            Route("/sse", sse),
            Route("/endless", endless),
            Route("/big", big),
            Route("/boom", boom),
            Route("/background", background),
            Route("/wait-disconnect", wait_disconnect),
            Route("/health/probe", hello),
            WebSocketRoute("/ws", ws),
        ],
        lifespan=lifespan,
    )


def fastapi_app(gates: Gates) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gates["lifespan-startup"].set()
        yield
        gates["lifespan-shutdown"].set()

    app = FastAPI(lifespan=lifespan)

    async def current_user(request: FastAPIRequest) -> str:
        request.state.user = "state-user"
        return "state-user"

    @app.post("/echo")
    @app.put("/echo")
    async def echo(request: FastAPIRequest) -> Response:
        body = await request.body()
        request.state.seen = "echo"
        return JSONResponse({"len": len(body)}, headers={"X-Case": "echo"})

    @app.post("/form")
    async def form(request: FastAPIRequest) -> Response:
        data = await request.form()
        return PlainTextResponse("fields: " + ",".join(sorted(str(k) for k in data.keys())))

    @app.api_route("/hello", methods=["GET", "HEAD"])
    async def hello() -> Response:
        return PlainTextResponse("hello")

    @app.get("/health/probe")
    async def probe() -> Response:
        return PlainTextResponse("hello")

    @app.get("/items/{item_id}")
    async def item(item_id: str, user: str = Depends(current_user)) -> Dict[str, str]:
        return {"item": item_id}

    @app.get("/sse")
    async def sse() -> StreamingResponse:
        return StreamingResponse(_sse(gates), media_type="text/event-stream")

    @app.get("/endless")
    async def endless() -> StreamingResponse:
        return StreamingResponse(_endless(gates), media_type="application/octet-stream")

    @app.get("/big")
    async def big(mb: int = 50) -> StreamingResponse:
        return StreamingResponse(_big(mb * MB), media_type="application/octet-stream")

    @app.get("/boom")
    async def boom() -> Response:
        raise ValueError("boom")

    @app.get("/background")
    async def background(tasks: BackgroundTasks) -> Response:
        tasks.add_task(gates["background-ran"].set)
        return PlainTextResponse("queued")

    @app.get("/wait-disconnect")
    async def wait_disconnect(request: FastAPIRequest) -> Response:
        gates["waiting-for-disconnect"].set()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gates["app-saw-disconnect"].set()
                break
        return PlainTextResponse("gone")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            text = await websocket.receive_text()
            if text == "bye":
                await websocket.close()
                return
            await websocket.send_text("echo: " + text)

    return app


APPS: Dict[str, Callable[[Gates], Any]] = {"starlette": starlette_app, "fastapi": fastapi_app}


def event_for(events: list[Dict[str, Any]], path: str, verb: Optional[str] = None) -> Dict[str, Any]:
    """The one event whose URI path is ``path`` (and verb, if given)."""
    found = [
        e
        for e in events
        if e["request"]["uri"].split("?")[0].endswith(path) and (verb is None or e["request"]["verb"] == verb)
    ]
    assert len(found) == 1, [e["request"]["uri"] for e in events]
    return found[0]


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
