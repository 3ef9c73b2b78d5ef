"""The Moesif collector API (``/v1/...``), per docs/wire.md.

Answers, in order of checks:

- unknown path -> 404; wrong method -> 405 (with ``Allow``);
- no ``X-Moesif-Application-Id`` (or an empty one) -> 401;
- an active fault (see ``faults.py``) -> 500, 429 or no answer at all;
- a body that is not JSON in content type (415), encoding (415), size (413), gzip (400), syntax (400)
  or shape (400) -> a JSON ``{"error", "message"}`` and nothing stored;
- otherwise the payload is stored in one transaction and the answer is ``201 Created`` with the body
  ``{}`` (the real API answers successful creations with 201) and ``X-Moesif-Config-ETag``.

``GET /v1/config`` and ``GET /v1/rules`` serve the files verbatim with ``X-Moesif-Config-ETag`` (and a
standard ``ETag`` of that file alone). Every ``/v1`` request is written to the request log, so tests can
count attempts, retries and config fetches and check the headers clients sent.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

from .app import CollectorApp
from .body import BodyError, check_content_type, decode, parse_json
from .config_store import ConfigUnavailable, JsonFileStore
from .http_types import JSON_TYPE, Request, Response, body_error_response, error_response, json_response
from .storage import RequestRecord
from .validate import as_items, check_event, check_profile, unstorable


@dataclass(frozen=True)
class Route:
    """What one ``/v1`` path accepts: ``kind`` is events/users/companies/subscriptions/config/rules."""

    kind: str
    batch: bool = False

    @property
    def method(self) -> str:
        """The only method the path answers."""
        return "GET" if self.kind in ("config", "rules") else "POST"


ROUTES: dict[str, Route] = {
    "/v1/events": Route("events"),
    "/v1/events/batch": Route("events", batch=True),
    "/v1/users": Route("users"),
    "/v1/users/batch": Route("users", batch=True),
    "/v1/companies": Route("companies"),
    "/v1/companies/batch": Route("companies", batch=True),
    "/v1/subscriptions": Route("subscriptions"),
    "/v1/subscriptions/batch": Route("subscriptions", batch=True),
    "/v1/config": Route("config"),
    "/v1/rules": Route("rules"),
}

_SINGULAR = {"events": "event", "users": "user", "companies": "company", "subscriptions": "subscription"}

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
}


def handle(app: CollectorApp, req: Request) -> Response:
    """Answer one ``/v1`` request and record it in the request log."""
    record: dict[str, object] = {}
    response = _answer(app, req, record)
    response.headers.update(CORS_HEADERS)
    app.storage.log_request(
        RequestRecord(
            method=req.method,
            path=req.path,
            status=None if response.hang else response.status,
            app_id=req.header("x-moesif-application-id"),
            user_agent=req.header("user-agent"),
            content_type=req.header("content-type"),
            content_encoding=req.header("content-encoding"),
            body_bytes=_int_or_none(record.get("body_bytes")),
            items=_int_or_none(record.get("items")),
            fault=_str_or_none(record.get("fault")),
            error=_str_or_none(record.get("error")),
        )
    )
    if response.hang_until is not None:
        response.hang_until.wait()
    return response


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _answer(app: CollectorApp, req: Request, record: dict[str, object]) -> Response:
    if req.method == "OPTIONS":  # CORS preflight, for browser-side senders
        return Response(
            204,
            headers={
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Content-Encoding, X-Moesif-Application-Id",
                "Access-Control-Max-Age": "600",
            },
        )
    route = ROUTES.get(req.path.rstrip("/") or "/")
    if route is None:
        record["error"] = "not found"
        return error_response(404, f"no such endpoint: {req.path}")
    if req.method != route.method:
        record["error"] = "method not allowed"
        return error_response(405, f"{req.path} accepts {route.method} only", {"Allow": route.method})
    app_id = (req.header("x-moesif-application-id") or "").strip()
    if not app_id:
        record["error"] = "missing application id"
        return error_response(401, "the X-Moesif-Application-Id header is missing or empty")

    settings, release = app.faults.take(ingest=route.method == "POST")
    if settings.delay:
        app.stopping.wait(settings.delay)
    if settings.mode != "ok":
        record["fault"] = settings.mode
        return _fault(app, req, settings.mode, settings.retry_after, release)

    if route.kind in ("config", "rules"):
        return _serve_file(app, app.config if route.kind == "config" else app.rules)
    try:
        stored = _ingest(app, req, route, record)
    except BodyError as exc:
        record["error"] = exc.message
        return body_error_response(exc)
    record["items"] = stored
    return json_response(201, {}, {"X-Moesif-Config-ETag": _etag_or_empty(app)})


def _etag_or_empty(app: CollectorApp) -> str:
    try:
        return app.config_etag()
    except ConfigUnavailable:
        return ""


def _fault(app: CollectorApp, req: Request, mode: str, retry_after: int, release: threading.Event) -> Response:
    if mode == "hang":
        # Accept and never answer: :func:`handle` logs the request, then waits until the fault changes
        # or the server stops, and the server closes the connection without writing anything.
        return Response(0, hang_until=release)
    with contextlib.suppress(BodyError):  # consume the body so the connection stays usable for a retry
        req.read_body()
    if mode == "status429":
        return error_response(429, "fault injected: rate limited", {"Retry-After": str(retry_after)})
    return error_response(500, "fault injected: internal server error")


def _serve_file(app: CollectorApp, store: JsonFileStore) -> Response:
    try:
        snapshot = store.snapshot()
        etag = app.config_etag()
    except ConfigUnavailable as exc:
        return error_response(500, str(exc))
    return Response(
        200,
        snapshot.content,
        {"Content-Type": JSON_TYPE, "X-Moesif-Config-ETag": etag, "ETag": f'"{snapshot.etag}"'},
    )


def _ingest(app: CollectorApp, req: Request, route: Route, record: dict[str, object]) -> int:
    check_content_type(req.header("content-type"))
    raw = req.read_body()
    record["body_bytes"] = len(raw)
    payload = parse_json(decode(raw, req.header("content-encoding"), app.max_body, req.reservation))
    items = as_items(payload, route.batch, route.kind)
    label = route.kind if route.batch else _SINGULAR[route.kind]
    for index, item in enumerate(items):
        where = f"{label}[{index}]" if route.batch else label
        if route.kind == "events":
            check_event(item, where)
        else:
            check_profile(route.kind, item, where)
    try:
        if route.kind == "events":
            return app.storage.insert_events(items)
        return app.storage.upsert_profiles(route.kind, items)
    except (UnicodeEncodeError, ValueError, OverflowError):
        # A lone surrogate reaches SQLite's UTF-8 encoding, 1e999 the strict JSON encoder: refused whole, nothing
        # stored (the batch is one transaction), and the client learns where.
        raise BodyError(400, unstorable(items, label, route.batch)) from None
