"""A small Flask API logged with moesifwsgi, set up as the original's README shows.

Run a local collector, then this app, then call it::

    moesif-collector serve                # or: python -m moesif_collector serve  (127.0.0.1:5080)
    python examples/flask_app.py          # werkzeug on 127.0.0.1:8000 (PORT to change it)

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

from flask import Flask, Response, abort, jsonify, request

from moesifwsgi import MoesifMiddleware

BASE_URI = os.environ.get("MOESIF_BASE_URI", "http://127.0.0.1:5080")
APPLICATION_ID = os.environ.get("MOESIF_APPLICATION_ID", "demo-application-id")
PORT = int(os.environ.get("PORT", "8000"))

#: token -> (user id, company id): a stand-in for a real user store
TOKENS: Dict[str, Tuple[str, str]] = {"demo-token": ("alice", "acme"), "other-token": ("bob", "globex")}
ITEMS: List[Dict[str, Any]] = [{"id": 1, "name": "notebook"}]


def caller(environ: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = auth.partition(" ")
    return TOKENS.get(token) if scheme.lower() == "bearer" else None


# -- the Moesif settings, with the callback signatures of the README -----------------------------------------------


def identify_user(app: Any, environ: Dict[str, Any], response_headers: Dict[str, str] = dict()) -> Optional[str]:  # noqa: B006
    who = caller(environ)
    return who[0] if who else None


def identify_company(app: Any, environ: Dict[str, Any], response_headers: Dict[str, str] = dict()) -> Optional[str]:  # noqa: B006
    who = caller(environ)
    return who[1] if who else None


def get_metadata(app: Any, environ: Dict[str, Any]) -> Dict[str, Any]:
    return {"datacenter": "local", "deployment_version": "v1.2.3"}


def should_skip(app: Any, environ: Dict[str, Any]) -> bool:
    return "health/probe" in environ.get("PATH_INFO", "")


moesif_settings: Dict[str, Any] = {
    "APPLICATION_ID": APPLICATION_ID,
    "BASE_URI": BASE_URI,
    "LOG_BODY": True,
    "IDENTIFY_USER": identify_user,
    "IDENTIFY_COMPANY": identify_company,
    "GET_METADATA": get_metadata,
    "SKIP": should_skip,
    "REQUEST_BODY_MASKS": ["password"],
    "CAPTURE_OUTGOING_REQUESTS": False,
}


# -- the app ---------------------------------------------------------------------------------------------------------

app = Flask(__name__)


@app.route("/api/items", methods=["GET", "POST"])
def items() -> Any:
    if caller(request.environ) is None:
        abort(401)
    if request.method == "POST":
        data = request.get_json(silent=True) or {}
        item = {"id": len(ITEMS) + 1, "name": str(data.get("name", "unnamed"))}
        ITEMS.append(item)
        return jsonify(item), 201
    return jsonify(ITEMS)


@app.post("/api/contact")
def contact() -> Any:
    email = request.form.get("email", "")
    return f"<p>Thanks, {email}: we will answer soon.</p>"


@app.get("/api/export")
def export() -> Response:
    def rows() -> Iterator[bytes]:
        yield b"id,name,value\n"
        for start in range(0, 250_000, 1000):  # about 5 MB, produced 1000 rows at a time
            yield b"".join(b"%d,item-%d,%d\n" % (i, i, i * 7 % 1000) for i in range(start, start + 1000))

    return Response(rows(), mimetype="text/csv", headers={"Content-Disposition": "attachment; filename=export.csv"})


@app.get("/api/boom")
def boom() -> Any:
    raise RuntimeError("something broke")


@app.get("/health/probe")
def probe() -> Any:
    return {"ok": True}


app.wsgi_app = MoesifMiddleware(app.wsgi_app, moesif_settings)  # type: ignore[method-assign]

if __name__ == "__main__":
    print(f"Flask on http://127.0.0.1:{PORT}, events to {BASE_URI}")
    app.run(host="127.0.0.1", port=PORT, threaded=True)
