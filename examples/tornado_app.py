"""A small Tornado JSON API logged with moesiftornado, as the original's README sets it up.

Run a local collector, then this app, then call it::

    moesif-collector serve                # or: python -m moesif_collector serve  (127.0.0.1:5080)
    python examples/tornado_app.py        # listens on 127.0.0.1:8888 (PORT to change it)

    curl -s localhost:8888/api/items -H 'Authorization: Bearer demo-token'
    curl -s localhost:8888/api/items -H 'Authorization: Bearer demo-token' -d '{"name": "pen"}'
    curl -s localhost:8888/api/items                          # 401: no token
    curl -sN localhost:8888/api/stream                        # a streamed response, flushed line by line
    curl -s localhost:8888/api/boom                           # a handler that raises: a 500 with a JSON body
    curl -s localhost:8888/health/probe                       # skipped by SKIP: not sent

Settings from the environment: ``MOESIF_BASE_URI`` (default ``http://127.0.0.1:5080``), ``MOESIF_APPLICATION_ID``
(default a demo id; any non-empty string works with the local collector), ``PORT`` (default 8888).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Dict, List, Optional

import tornado.web

from moesiftornado import MoesifMiddleware

BASE_URI = os.environ.get("MOESIF_BASE_URI", "http://127.0.0.1:5080")
APPLICATION_ID = os.environ.get("MOESIF_APPLICATION_ID", "demo-application-id")
PORT = int(os.environ.get("PORT", "8888"))

#: token -> (user id, company id): a stand-in for a real user store
TOKENS = {"demo-token": ("alice", "acme"), "other-token": ("bob", "globex")}


class ApiHandler(tornado.web.RequestHandler):
    """JSON in, JSON out, bearer-token auth, errors as JSON."""

    current_company: Optional[str] = None

    def prepare(self) -> None:
        auth = self.request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token not in TOKENS:
            raise tornado.web.HTTPError(401, reason="Unauthorized")
        self.current_user, self.current_company = TOKENS[token]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish({"error": self._reason, "status": status_code})


class ItemsHandler(ApiHandler):
    items: List[Dict[str, Any]] = [{"id": 1, "name": "notebook"}]

    def get(self) -> None:
        self.write({"items": self.items, "user": self.current_user})

    def post(self) -> None:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, reason="Body is not JSON")
        item = {"id": len(self.items) + 1, "name": str(data.get("name", "unnamed"))}
        self.items.append(item)
        self.set_status(201)
        self.write(item)


class StreamHandler(tornado.web.RequestHandler):
    """Newline-delimited JSON, one line per flush(): the client sees each line as it is written."""

    async def get(self) -> None:
        self.set_header("Content-Type", "application/x-ndjson")
        for i in range(5):
            self.write(json.dumps({"tick": i}) + "\n")
            await self.flush()
            await asyncio.sleep(0.2)


class BoomHandler(ApiHandler):
    def prepare(self) -> None:  # no auth needed to see an error
        pass

    def get(self) -> None:
        raise RuntimeError("something broke")


class ProbeHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"ok": True})


# -- Moesif, as in the moesiftornado README ------------------------------------------------------------------------


def identify_user(handler: tornado.web.RequestHandler) -> Optional[str]:
    return handler.current_user  # type: ignore[no-any-return]


def identify_company(handler: tornado.web.RequestHandler) -> Optional[str]:
    return getattr(handler, "current_company", None)


def should_skip(handler: tornado.web.RequestHandler) -> bool:
    return "health/probe" in handler.request.full_url()


def get_metadata(handler: tornado.web.RequestHandler) -> Dict[str, Any]:
    return {"datacenter": "local", "handler": type(handler).__name__}


moesif_config = {
    "APPLICATION_ID": APPLICATION_ID,
    "BASE_URI": BASE_URI,
    "LOG_BODY": True,
    "IDENTIFY_USER": identify_user,
    "IDENTIFY_COMPANY": identify_company,
    "SKIP": should_skip,
    "GET_METADATA": get_metadata,
    "REQUEST_BODY_MASKS": ["password"],
}


def make_app(middleware: MoesifMiddleware) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/api/items", ItemsHandler),
            (r"/api/stream", StreamHandler),
            (r"/api/boom", BoomHandler),
            (r"/health/probe", ProbeHandler),
        ],
        log_function=middleware.log_event,
    )


async def main() -> None:
    middleware = MoesifMiddleware(moesif_config)
    # the profile helpers are synchronous HTTP calls: keep them off the IOLoop
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, middleware.update_company, {"company_id": "acme", "company_domain": "acme.ex"})
    app = make_app(middleware)
    app.listen(PORT, address="127.0.0.1")
    print(f"listening on http://127.0.0.1:{PORT}, sending events to {BASE_URI}")
    await asyncio.Event().wait()


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
