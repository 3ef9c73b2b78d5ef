"""A small aiohttp JSON API logged with moesif-aiohttp, as the original's README sets it up.

Run a local collector, then this app, then call it::

    moesif-collector serve                # or: python -m moesif_collector serve  (127.0.0.1:5080)
    python examples/aiohttp_app.py        # listens on 127.0.0.1:8080 (PORT to change it)

    curl -s localhost:8080/api/items -H 'Authorization: Bearer demo-token'
    curl -s localhost:8080/api/items -H 'Authorization: Bearer demo-token' -d '{"name": "pen"}'
    curl -s localhost:8080/api/items                          # 401: no token
    curl -sN localhost:8080/api/events                        # server-sent events, one every 0.2 s
    curl -s localhost:8080/api/boom                           # a handler that raises: a 500
    curl -s localhost:8080/health/probe                       # skipped by SKIP: not sent

Settings from the environment: ``MOESIF_BASE_URI`` (default ``http://127.0.0.1:5080``), ``MOESIF_APPLICATION_ID``
(default a demo id; any non-empty string works with the local collector), ``PORT`` (default 8080).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Dict, List, Optional

from aiohttp import web

from moesif_aiohttp import MoesifMiddleware

BASE_URI = os.environ.get("MOESIF_BASE_URI", "http://127.0.0.1:5080")
APPLICATION_ID = os.environ.get("MOESIF_APPLICATION_ID", "demo-application-id")
PORT = int(os.environ.get("PORT", "8080"))

#: token -> (user id, company id): a stand-in for a real user store
TOKENS = {"demo-token": ("alice", "acme"), "other-token": ("bob", "globex")}
ITEMS: List[Dict[str, Any]] = [{"id": 1, "name": "notebook"}]


def caller(request: web.Request) -> tuple[str, str]:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token not in TOKENS:
        raise web.HTTPUnauthorized(text=json.dumps({"error": "Unauthorized"}), content_type="application/json")
    return TOKENS[token]


async def list_items(request: web.Request) -> web.Response:
    user, _ = caller(request)
    return web.json_response({"items": ITEMS, "user": user})


async def add_item(request: web.Request) -> web.Response:
    caller(request)
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": "Body is not JSON"}), content_type="application/json")
    item = {"id": len(ITEMS) + 1, "name": str(data.get("name", "unnamed"))}
    ITEMS.append(item)
    return web.json_response(item, status=201)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events written by hand (aiohttp_sse does the same): each reaches the client as it is written."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for i in range(5):
        await response.write(f"data: {json.dumps({'tick': i})}\n\n".encode())
        await asyncio.sleep(0.2)
    await response.write_eof()
    return response


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("something broke")


async def probe(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


# -- Moesif, as in the moesif-aiohttp README ------------------------------------------------------------------------


def _token(request: web.Request) -> str:
    return request.headers.get("Authorization", "").partition(" ")[2]


def identify_user(request: web.Request, response: Optional[web.StreamResponse]) -> Optional[str]:
    """Called before the handler too (``response`` None) when governance rules are set."""
    token = _token(request)
    return TOKENS[token][0] if token in TOKENS else None


def identify_company(request: web.Request, response: Optional[web.StreamResponse]) -> Optional[str]:
    token = _token(request)
    return TOKENS[token][1] if token in TOKENS else None


def should_skip(request: web.Request, response: web.StreamResponse) -> bool:
    return request.path.startswith("/health/")


def get_metadata(request: web.Request, response: web.StreamResponse) -> Dict[str, Any]:
    return {
        "datacenter": "local",
        "route": request.match_info.route.resource.canonical if request.match_info.route.resource else None,
    }


moesif_settings = {
    "APPLICATION_ID": APPLICATION_ID,
    "BASE_URI": BASE_URI,
    "LOG_BODY": True,
    "IDENTIFY_USER": identify_user,
    "IDENTIFY_COMPANY": identify_company,
    "SKIP": should_skip,
    "GET_METADATA": get_metadata,
    "REQUEST_BODY_MASKS": ["password"],
}


def make_app(middleware: MoesifMiddleware) -> web.Application:
    app = web.Application(middlewares=[middleware])
    app.add_routes(
        [
            web.get("/api/items", list_items),
            web.post("/api/items", add_item),
            web.get("/api/events", events),
            web.get("/api/boom", boom),
            web.get("/health/probe", probe),
        ]
    )
    return app


async def main() -> None:
    middleware = MoesifMiddleware(moesif_settings)
    # the profile helpers are synchronous HTTP calls: keep them off the event loop
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, middleware.update_company, {"company_id": "acme", "company_domain": "acme.ex"})
    runner = web.AppRunner(make_app(middleware))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORT).start()
    print(f"listening on http://127.0.0.1:{PORT}, sending events to {BASE_URI}")
    await asyncio.Event().wait()


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
