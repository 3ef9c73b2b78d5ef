"""A small FastAPI app logged with moesifasgi, set up as the original's README shows.

Run a local collector, then this app, then call it::

    moesif-collector serve                # or: python -m moesif_collector serve  (127.0.0.1:5080)
    python examples/fastapi_app.py        # uvicorn on 127.0.0.1:8000 (PORT to change it)

    curl -s localhost:8000/api/items -H 'Authorization: Bearer demo-token'
    curl -s localhost:8000/api/items -H 'Authorization: Bearer demo-token' -H 'Content-Type: application/json' \\
         -d '{"name": "pen"}'
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
from fastapi import BackgroundTasks, Depends, FastAPI, Form, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

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
    return getattr(request.state, "user", None)  # set by the auth dependency below


def identify_company(request: Request, response: Any) -> Optional[str]:
    return getattr(request.state, "company", None)


def get_metadata(request: Request, response: Any) -> Dict[str, Any]:
    route = request.scope.get("route")  # the matched route, as FastAPI's router left it in the scope
    return {"datacenter": "westus", "route": getattr(route, "path", None)}


def should_skip(request: Request, response: Any) -> bool:
    return request.url.path.startswith("/health")


def mask_event(event: Any) -> Any:
    if isinstance(event.request.body, dict) and "password" in event.request.body:
        event.request.body["password"] = None
    return event


moesif_settings: Dict[str, Any] = {
    "APPLICATION_ID": APPLICATION_ID,
    "BASE_URI": BASE_URI,
    "LOG_BODY": True,
    "IDENTIFY_USER": identify_user,
    "IDENTIFY_COMPANY": identify_company,
    "GET_METADATA": get_metadata,
    "SKIP": should_skip,
    "MASK_EVENT_MODEL": mask_event,
    "CAPTURE_OUTGOING_REQUESTS": False,
}

app = FastAPI(title="moesifasgi example")
app.add_middleware(MoesifMiddleware, settings=moesif_settings)


# -- the API ------------------------------------------------------------------------------------------------------


def current_user(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token not in TOKENS:
        raise HTTPException(status_code=401, detail="Unauthorized", headers={"WWW-Authenticate": "Bearer"})
    request.state.user, request.state.company = TOKENS[token]
    return str(request.state.user)


class NewItem(BaseModel):
    name: str


@app.get("/api/items")
async def list_items(user: str = Depends(current_user)) -> Dict[str, Any]:
    return {"items": ITEMS, "user": user}


@app.post("/api/items", status_code=201)
async def create_item(item: NewItem, user: str = Depends(current_user)) -> Dict[str, Any]:
    created = {"id": len(ITEMS) + 1, "name": item.name, "owner": user}
    ITEMS.append(created)
    return created


@app.post("/api/contact")
async def contact(email: str = Form(...), message: str = Form("")) -> Dict[str, Any]:
    return {"received": True, "email": email, "length": len(message)}


async def ticks() -> AsyncIterator[str]:
    for i in range(5):
        yield json.dumps({"tick": i}) + "\n"
        await asyncio.sleep(0.2)


@app.get("/api/stream")
async def stream() -> StreamingResponse:
    return StreamingResponse(ticks(), media_type="application/x-ndjson")


async def server_sent_events(request: Request) -> AsyncIterator[str]:
    for i in range(10):
        if await request.is_disconnected():
            return
        yield f"event: tick\ndata: {i}\n\n"
        await asyncio.sleep(0.5)


@app.get("/api/events")
async def events(request: Request) -> StreamingResponse:
    return StreamingResponse(server_sent_events(request), media_type="text/event-stream")


def write_report(user: str) -> None:
    logger.warning("background task: report for %s written", user)


@app.get("/api/report", status_code=202)
async def report(tasks: BackgroundTasks, user: str = Depends(current_user)) -> Dict[str, Any]:
    tasks.add_task(write_report, user)
    return {"queued": True}


@app.get("/api/boom")
async def boom() -> Dict[str, Any]:
    raise RuntimeError("this endpoint always fails")


@app.get("/health/probe")
async def probe() -> Dict[str, str]:
    return {"status": "ok"}


@app.websocket("/ws")
async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text("echo: " + await websocket.receive_text())
    except WebSocketDisconnect:
        return


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(f"moesifasgi FastAPI example on http://127.0.0.1:{PORT}, sending to {BASE_URI}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=PORT)
