"""A small Pyramid API logged with moesifwsgi, set up as the original's README shows.

Run a local collector, then this app, then call it::

    moesif-collector serve                # or: python -m moesif_collector serve  (127.0.0.1:5080)
    python examples/pyramid_app.py        # wsgiref on 127.0.0.1:8000 (PORT to change it)

    curl -s localhost:8000/api/items -H 'Authorization: Bearer demo-token'
    curl -s localhost:8000/api/items -H 'Authorization: Bearer demo-token' -H 'Content-Type: application/json' \\
         -d '{"name": "pen", "password": "hunter2"}'
    curl -s localhost:8000/api/items                              # 401: no token
    curl -s localhost:8000/api/contact -d 'email=a@b.c&message=hi' # a form post
    curl -s localhost:8000/api/export -o export.csv               # a streamed download (5 MB, generated)
    curl -s localhost:8000/api/boom                               # raises: recorded as a 500
    curl -s localhost:8000/health/probe                           # skipped by SKIP: not sent

Settings from the environment: ``MOESIF_BASE_URI`` (default ``http://127.0.0.1:5080``), ``MOESIF_APPLICATION_ID``
(default a demo id; any non-empty string works with the local collector), ``PORT`` (default 8000).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional, Tuple
from wsgiref.simple_server import WSGIRequestHandler, make_server

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPUnauthorized
from pyramid.response import Response

from moesifwsgi import MoesifMiddleware

BASE_URI = os.environ.get("MOESIF_BASE_URI", "http://127.0.0.1:5080")
APPLICATION_ID = os.environ.get("MOESIF_APPLICATION_ID", "demo-application-id")
PORT = int(os.environ.get("PORT", "8000"))

TOKENS: Dict[str, Tuple[str, str]] = {"demo-token": ("alice", "acme"), "other-token": ("bob", "globex")}
ITEMS: List[Dict[str, Any]] = [{"id": 1, "name": "notebook"}]


def caller(environ: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return TOKENS.get(token) if scheme.lower() == "bearer" else None


# -- the Moesif settings, with the callback signatures of the README -----------------------------------------------


def identify_user(app: Any, environ: Dict[str, Any], response_headers: Dict[str, str] = dict()) -> Optional[str]:  # noqa: B006
    who = caller(environ)
    return who[0] if who else None


def identify_company(app: Any, environ: Dict[str, Any], response_headers: Dict[str, str] = dict()) -> Optional[str]:  # noqa: B006
    who = caller(environ)
    return who[1] if who else None


moesif_settings: Dict[str, Any] = {
    "APPLICATION_ID": APPLICATION_ID,
    "BASE_URI": BASE_URI,
    "LOG_BODY": True,
    "IDENTIFY_USER": identify_user,
    "IDENTIFY_COMPANY": identify_company,
    "GET_SESSION_TOKEN": lambda app, environ: environ.get("HTTP_X_SESSION"),
    "SKIP": lambda app, environ: "health/probe" in environ.get("PATH_INFO", ""),
    "REQUEST_BODY_MASKS": ["password"],
}


# -- the app ---------------------------------------------------------------------------------------------------------


def items(request: Any) -> Any:
    if caller(request.environ) is None:
        raise HTTPUnauthorized(json_body={"error": "unauthorized"})
    if request.method == "POST":
        try:
            data = request.json_body
        except ValueError:
            data = {}
        item = {"id": len(ITEMS) + 1, "name": str(data.get("name", "unnamed"))}
        ITEMS.append(item)
        request.response.status_int = 201
        return item
    return ITEMS


def contact(request: Any) -> Response:
    return Response(f"<p>Thanks, {request.POST.get('email', '')}: we will answer soon.</p>", content_type="text/html")


def export(request: Any) -> Response:
    def rows() -> Iterator[bytes]:
        yield b"id,name,value\n"
        for start in range(0, 250_000, 1000):  # about 5 MB, produced 1000 rows at a time
            yield b"".join(b"%d,item-%d,%d\n" % (i, i, i * 7 % 1000) for i in range(start, start + 1000))

    return Response(app_iter=rows(), content_type="text/csv", content_disposition="attachment; filename=export.csv")


def boom(request: Any) -> Any:
    raise RuntimeError("something broke")


def probe(request: Any) -> Any:
    return {"ok": True}


def make_app() -> Any:
    with Configurator() as config:
        config.add_route("items", "/api/items", request_method=("GET", "POST"))
        config.add_view(items, route_name="items", renderer="json")
        config.add_route("contact", "/api/contact", request_method="POST")
        config.add_view(contact, route_name="contact")
        config.add_route("export", "/api/export", request_method="GET")
        config.add_view(export, route_name="export")
        config.add_route("boom", "/api/boom")
        config.add_view(boom, route_name="boom")
        config.add_route("probe", "/health/probe")
        config.add_view(probe, route_name="probe", renderer="json")
        app = config.make_wsgi_app()
    # Put middleware
    return MoesifMiddleware(app, moesif_settings)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per request is enough
        print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}")


if __name__ == "__main__":
    server = make_server("127.0.0.1", PORT, make_app(), handler_class=QuietHandler)
    print(f"Pyramid on http://127.0.0.1:{PORT}, events to {BASE_URI}")
    server.serve_forever()
