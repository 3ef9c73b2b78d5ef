"""Tiny request and response values shared by the API, admin and web modules.

Handlers get a :class:`Request` and return a :class:`Response` instead of touching the socket, which
keeps routing logic small and keeps all socket writing (and its error handling) in ``server.py``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .body import BodyError, Readable, content_length, drain, read_raw
from .inflight import BusyError, InflightBudget, Reservation

JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Response:
    """Status, headers and body of one answer.

    ``hang_until`` (a fault) means: wait for that event, then close the connection without answering.
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False
    hang_until: threading.Event | None = None

    @property
    def hang(self) -> bool:
        """Whether this is a "never answer" response."""
        return self.hang_until is not None


class Request:
    """One parsed HTTP request; the body is read on demand so limits apply before any byte is read."""

    def __init__(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        rfile: Readable,
        max_body: int,
        budget: InflightBudget | None = None,
    ) -> None:
        """Keep the request parts; ``headers`` keys are matched case-insensitively.

        Body bytes are reserved in ``budget`` as they are read (see ``inflight.py``); the server releases
        :attr:`reservation` once the request is answered.
        """
        self.method = method
        self.path = path
        self.query = query
        self.headers = {key.lower(): value for key, value in headers.items()}
        self._rfile = rfile
        self.max_body = max_body
        self.body_consumed = False
        self.body_attempted = False
        self.reservation = Reservation(budget if budget is not None else InflightBudget())

    def header(self, name: str) -> str | None:
        """A header value by case-insensitive name, or ``None``."""
        return self.headers.get(name.lower())

    def param(self, name: str, default: str = "") -> str:
        """The first value of a query parameter, or ``default``."""
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def has_body(self) -> bool:
        """Whether the client announced a body (which must be consumed to keep the connection)."""
        if "chunked" in (self.header("transfer-encoding") or "").lower():
            return True
        try:
            return bool(content_length(self.header("content-length")))
        except BodyError:
            return True  # an unreadable length: treat as a body we cannot consume, so the connection is closed

    def read_body(self, max_bytes: int | None = None) -> bytes:
        """Read the raw body (once), raising :class:`~.body.BodyError` when it is refused."""
        if self.body_attempted:
            raise RuntimeError("body already read")
        self.body_attempted = True
        if not self.has_body:
            self.body_consumed = True
            return b""
        try:
            data = read_raw(
                self._rfile, self.headers, self.max_body if max_bytes is None else max_bytes, self.reservation
            )
        except BusyError:
            if "chunked" not in (self.header("transfer-encoding") or "").lower():
                self.body_attempted = False  # refused before a byte was read: discard_body can still drop it
            raise
        except OSError as exc:  # the client stalled past the connection timeout, or went away mid-body
            raise BodyError(408, f"the body did not arrive ({type(exc).__name__})", drained=False) from None
        self.body_consumed = True
        return data

    def discard_body(self) -> None:
        """Read and drop a body nobody asked for (answered before reading it), so keep-alive still works."""
        if self.body_attempted or not self.has_body:
            return
        self.body_attempted = True
        try:
            self.body_consumed = drain(self._rfile, self.headers, self.max_body)
        except OSError:  # stalled or gone: the connection is closed after the answer
            self.body_consumed = False


def json_response(status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
    """Serialise ``value`` as the JSON body of a response."""
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    all_headers = {"Content-Type": JSON_TYPE}
    all_headers.update(headers or {})
    return Response(status, body, all_headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The JSON error shape used everywhere: ``{"error": <reason phrase>, "message": <details>}``."""
    reasons = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        408: "Request Timeout",
        411: "Length Required",
        413: "Payload Too Large",
        415: "Unsupported Media Type",
        421: "Misdirected Request",
        429: "Too Many Requests",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }
    return json_response(status, {"error": reasons.get(status, "Error"), "message": message}, headers)


def body_error_response(exc: BodyError) -> Response:
    """The answer to a refused body: its status, its message, and its headers (``Retry-After`` on a 503)."""
    return error_response(exc.status, exc.message, dict(exc.headers))
