"""Admin endpoints for tests and demos (no application id needed, never affected by faults).

- ``GET /_admin/faults``: the fault in force (JSON, see ``faults.py``).
- ``POST /_admin/faults``: set it, e.g. ``{"mode": "status429", "retry_after": 2}``,
  ``{"mode": "error500", "times": 3}``, ``{"delay": 1.5}``, ``{"hang": true}``; ``{}`` resets.
- ``DELETE /_admin/faults``: back to ``ok`` (and release hung requests).
- ``POST /_admin/clear``: delete all stored events, profiles and the request log.
- ``GET /_admin/requests``: the ``/v1`` request log (method, path, status, app id, user agent,
  content type and encoding, body size, item count, fault, error).
- ``GET /_admin/health``: ``{"ok": true, "events": N}``.

Writes (``POST``) need ``Content-Type: application/json``, and a browser's ``Origin`` must be the collector's own:
another web page can then not change faults or wipe the data (see ``access.py``).
"""

from __future__ import annotations

from .access import same_origin
from .app import CollectorApp
from .body import BodyError, parse_json
from .faults import FaultSettings
from .http_types import Request, Response, body_error_response, error_response, json_response

_ADMIN_MAX_BODY = 1024 * 1024


def handle(app: CollectorApp, req: Request) -> Response:
    """Answer one ``/_admin`` request."""
    refused = _refuse_cross_site(req)
    if refused is not None:
        return refused
    path = req.path.rstrip("/")
    if path == "/_admin/faults":
        if req.method == "GET":
            return json_response(200, app.faults.settings.to_json())
        if req.method == "DELETE":
            app.faults.set(FaultSettings())
            return json_response(200, app.faults.settings.to_json())
        if req.method == "POST":
            try:
                raw = req.read_body(_ADMIN_MAX_BODY)
                settings = FaultSettings.from_json(parse_json(raw) if raw.strip() else {})
            except BodyError as exc:
                return body_error_response(exc)
            except ValueError as exc:
                return error_response(400, str(exc))
            app.faults.set(settings)
            return json_response(200, settings.to_json())
        return error_response(405, "use GET, POST or DELETE", {"Allow": "GET, POST, DELETE"})
    if path == "/_admin/clear":
        if req.method != "POST":
            return error_response(405, "use POST", {"Allow": "POST"})
        app.storage.clear()
        return json_response(200, {"cleared": True})
    if path == "/_admin/requests":
        if req.method != "GET":
            return error_response(405, "use GET", {"Allow": "GET"})
        return json_response(200, app.storage.requests())
    if path == "/_admin/health":
        return json_response(200, {"ok": True, "events": app.storage.count_events()})
    return error_response(404, f"no such admin endpoint: {req.path}")


def _refuse_cross_site(req: Request) -> Response | None:
    """Another origin's page must not write: a foreign ``Origin`` -> 403; a ``POST`` that is not JSON -> 415."""
    if not same_origin(req.header("origin"), req.header("host")):
        return error_response(403, f"admin requests from another origin ({req.header('origin')!r:.100}) are refused")
    if req.method == "POST":
        media = (req.header("content-type") or "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            return error_response(
                415, "admin writes need Content-Type: application/json (e.g. curl -H 'Content-Type: application/json')"
            )
    return None
