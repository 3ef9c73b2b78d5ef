"""A small Starlette app logged with moesifasgi (the same API as ``fastapi_app.py``, in plain Starlette).

Run a local collector, then this app, then call it::

    moesif-collector serve                # or: python -m moesif_collector serve  (127.0.0.1:5080)
    python examples/starlette_app.py      # uvicorn on 127.0.0.1:8000 (PORT to change it)

    curl -s localhost:8000/api/items -H 'Authorization: Bearer demo-token'
    curl -s localhost:8000/api/items -H 'Authorization: Bearer demo-token' -d '{"name": "pen"}'
    curl -s localhost:8000/api/items                              # 401: no token
    curl -s localhost:8000/api/contact -d 'email=a@b.c&message=hi' # a form post
    curl -sN localhost:8000/api/stream                            # StreamingResponse, one line at a time
    curl -sN localhost:8000/api/events                            # server-sent events
    curl -s localhost:8000/api/report -H 'Authorization: Bearer demo-token'   # answers, then a background task
    curl -s localhost:8000/api/boom                               # raises: recorded as a 500
    curl -s localhost:8000/health/probe                           # skipped by SKIP: not sent
    python -m websockets ws://localhost:8000/ws                   # a websocket echo (not recorded)

Settings from the environment: ``MOESIF_BASE_URI`` (default ``http://127.0.0.1:5080``), ``MOESIF_APPLICATION_ID``
(default a demo id; any non-empty string works with the local collector), ``PORT`` (default 8000).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from moesifasgi import MoesifMiddleware

BASE_URI = os.environ.get("MOESIF_BASE_URI", "http://127.0.0.1:5080")
APPLICATION_ID = os.environ.get("MOESIF_APPLICATION_ID", "demo-application-id")
PORT = int(os.environ.get("PORT", "8000"))

logger = logging.getLogger("example")

#: token -> (user id, company id): a stand-in for a real user store
TOKENS: Dict[str, Tuple[str, str]] = {"demo-token": ("alice", "acme"), "other-token": ("bob", "globex")}
ITEMS: List[Dict[str, Any]] = [{"id": 1, "name": "notebook"}]


# -- the Moesif settings: every callback may be a plain function or async def ------------------------------------


async def identify_user(request: Request, response: Any) -> Optional[str]:
    return getattr(request.state, "user", None)  # set by authenticate() below


def identify_company(request: Request, response: Any) -> Optional[str]:
    return getattr(request.state, "company", None)


async def get_session_token(request: Request, response: Any) -> Optional[str]:
    return request.headers.get("x-session-id")


def get_metadata(request: Request, response: Any) -> Dict[str, Any]:
    return {"datacenter": "westus", "status_class": f"{response.status_code // 100}xx"}


def should_skip(request: Request, response: Any) -> bool:
    return request.url.path.startswith("/health")


moesif_settings: Dict[str, Any] = {
    "APPLICATION_ID": APPLICATION_ID,
    "BASE_URI": BASE_URI,
    "LOG_BODY": True,
    "IDENTIFY_USER": identify_user,
    "IDENTIFY_COMPANY": identify_company,
    "GET_SESSION_TOKEN": get_session_token,
    "GET_METADATA": get_metadata,
    "SKIP": should_skip,
    "REQUEST_BODY_MASKS": ["password"],
}


# -- the API ------------------------------------------------------------------------------------------------------


def authenticate(request: Request) -> Optional[Response]:
    """``None`` when the bearer token is known (and the user set on ``request.state``), else the 401 to send."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token not in TOKENS:
        return JSONResponse({"detail": "Unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    request.state.user, request.state.company = TOKENS[token]
    return None


async def items(request: Request) -> Response:
    denied = authenticate(request)
    if denied is not None:
        return denied
    if request.method == "GET":
        return JSONResponse({"items": ITEMS, "user": request.state.user})
    try:
        data = await request.json()
    except ValueError:
        return JSONResponse({"detail": "Body is not JSON"}, status_code=400)
    item = {"id": len(ITEMS) + 1, "name": str(data.get("name", "unnamed")), "owner": request.state.user}
    ITEMS.append(item)
    return JSONResponse(item, status_code=201)


async def contact(request: Request) -> Response:
    form = await request.form()
    email = form.get("email")
    if not email:
        return JSONResponse({"detail": "email is required"}, status_code=422)
    return JSONResponse({"received": True, "email": email, "length": len(str(form.get("message", "")))})


async def ticks() -> AsyncIterator[str]:
    for i in range(5):
        yield json.dumps({"tick": i}) + "\n"
        await asyncio.sleep(0.2)


async def stream(request: Request) -> Response:
    return StreamingResponse(ticks(), media_type="application/x-ndjson")


async def server_sent_events(request: Request) -> AsyncIterator[str]:
    for i in range(10):
        if await request.is_disconnected():
            return
        yield f"event: tick\ndata: {i}\n\n"
        await asyncio.sleep(0.5)


async def events(request: Request) -> Response:
    return StreamingResponse(server_sent_events(request), media_type="text/event-stream")


def write_report(user: str) -> None:
    logger.warning("background task: report for %s written", user)


async def report(request: Request) -> Response:
    denied = authenticate(request)
    if denied is not None:
        return denied
    return JSONResponse({"queued": True}, status_code=202, background=BackgroundTask(write_report, request.state.user))


async def boom(request: Request) -> Response:
    raise RuntimeError("this endpoint always fails")


async def probe(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text("echo: " + await websocket.receive_text())
    except WebSocketDisconnect:
        return


app = Starlette(
    routes=[
        Route("/api/items", items, methods=["GET", "POST"]),
        Route("/api/contact", contact, methods=["POST"]),
        Route("/api/stream", stream),
        Route("/api/events", events),
        Route("/api/report", report),
        Route("/api/boom", boom),
        Route("/health/probe", probe),
        WebSocketRoute("/ws", ws_echo),
    ],
)
app.add_middleware(MoesifMiddleware, settings=moesif_settings)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(f"moesifasgi Starlette example on http://127.0.0.1:{PORT}, sending to {BASE_URI}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=PORT)
