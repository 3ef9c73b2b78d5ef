"""The apps ``e2e_load.py`` serves under real servers: ``flask_app`` (WSGI, for gunicorn) and ``asgi_app`` (FastAPI,
for uvicorn), each with ``GET /hello`` (``{"hello": "world"}``) and ``POST /orders`` (echoes the ~2 KB JSON order
with a status added).

Environment, read at import (so in every worker): ``E2E_VARIANT`` = ``bare`` (default) or ``wrapped`` (our
middleware, ``moesifwsgi`` / ``moesifasgi``), and ``E2E_BASE_URI``, the local collector the wrapped app ships to.
"""

import os
from typing import Any, Dict

VARIANT = os.environ.get("E2E_VARIANT", "bare")
BASE_URI = os.environ.get("E2E_BASE_URI", "http://127.0.0.1:9")
if VARIANT not in ("bare", "wrapped"):
    raise RuntimeError(f"E2E_VARIANT must be bare or wrapped, not {VARIANT!r}")

SETTINGS: Dict[str, Any] = {"APPLICATION_ID": "e2e-bench-app", "BASE_URI": BASE_URI, "LOG_BODY": True}


def _answer(data: Dict[str, Any]) -> Dict[str, Any]:
    data["status"] = "accepted"
    return data


def _flask() -> Any:
    from flask import Flask, request

    app = Flask("e2e")

    @app.get("/hello")
    def hello() -> Any:
        return {"hello": "world"}

    @app.post("/orders")
    def orders() -> Any:
        return _answer(request.get_json())

    if VARIANT == "wrapped":
        from moesifwsgi import MoesifMiddleware

        app.wsgi_app = MoesifMiddleware(app.wsgi_app, dict(SETTINGS))  # type: ignore[method-assign]
    return app


def _nodelay_like_one_worker() -> None:
    """``uvicorn --workers N`` hands each worker a listening socket built with ``proto`` 0, and asyncio sets
    ``TCP_NODELAY`` on accepted sockets only when ``proto`` is ``IPPROTO_TCP``: every keep-alive request then waits
    ~40 ms (Nagle against the client's delayed ACK), bare and wrapped alike. Set it as one-worker uvicorn does."""
    import asyncio.base_events as base_events
    import socket

    def set_nodelay(sock: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    base_events._set_nodelay = set_nodelay  # type: ignore[attr-defined]


def _fastapi() -> Any:
    from fastapi import FastAPI, Request

    _nodelay_like_one_worker()

    app = FastAPI()

    @app.get("/hello")
    async def hello() -> Dict[str, str]:
        return {"hello": "world"}

    @app.post("/orders")
    async def orders(request: Request) -> Dict[str, Any]:
        return _answer(await request.json())

    if VARIANT == "wrapped":
        from moesifasgi import MoesifMiddleware

        app.add_middleware(MoesifMiddleware, settings=dict(SETTINGS))
    return app


_BUILT: Dict[str, Any] = {}


def __getattr__(name: str) -> Any:  # build only the app the server asks for (gunicorn or uvicorn), once
    if name not in ("flask_app", "asgi_app"):
        raise AttributeError(name)
    if name not in _BUILT:
        _BUILT[name] = _flask() if name == "flask_app" else _fastapi()
    return _BUILT[name]
