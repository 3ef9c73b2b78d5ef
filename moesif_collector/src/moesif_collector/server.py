"""The HTTP server: a stdlib ``ThreadingHTTPServer`` with one daemon thread per connection.

This module owns the sockets: it parses the request line and headers, routes to ``api`` (``/v1``),
``admin`` (``/_admin``) or ``web`` (everything else), writes the :class:`Response`, and turns any
unexpected exception into a JSON 500 instead of a dropped connection. It speaks HTTP/1.1 with
keep-alive, since clients keep one pooled session (docs/wire.md). It also tracks open connections, so that
stopping the server closes them (hung fault requests included) instead of leaving threads behind.
"""

from __future__ import annotations

import contextlib
import hmac
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import __version__, admin, api, web
from .access import has_token, token_cookie
from .app import CollectorApp
from .http_types import Request, Response, error_response
from .text import printable


class CollectorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server bound to one :class:`CollectorApp`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, app: CollectorApp, verbose: bool = False) -> None:
        """Bind and listen on ``host:port`` (port 0 picks a free port; IPv6 hosts work too)."""
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.app = app
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._idle = threading.Condition(self._connections_lock)
        super().__init__((host, port), CollectorHandler)

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0)."""
        return int(self.server_address[1])

    def track(self, conn: socket.socket, active: bool) -> None:
        """Remember (or forget) an open client connection."""
        with self._connections_lock:
            if active:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)
                self._idle.notify_all()

    def close_connections(self, timeout: float = 5.0) -> None:
        """Shut down every open client connection and wait (bounded) for their threads to finish."""
        with self._connections_lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            deadline = time.monotonic() + timeout
            while self._connections and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report unexpected errors outside a handler on stderr, without stopping the server."""
        if self.verbose:
            super().handle_error(request, client_address)


def _token_answer(token: str, req: Request) -> Response:
    """Without the token: ``/?token=TOKEN`` sets the cookie and goes to the page; anything else is a 401."""
    if req.path == "/" and req.param("token") and hmac.compare_digest(req.param("token").encode(), token.encode()):
        return Response(303, headers={"Location": "/", "Set-Cookie": token_cookie(token), "Cache-Control": "no-store"})
    return error_response(
        401, "this collector needs its token: open /?token=TOKEN once, or send Authorization: Bearer TOKEN"
    )


class CollectorHandler(BaseHTTPRequestHandler):
    """Parses requests and writes responses; all decisions are made in api/admin/web."""

    server: CollectorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = f"moesif-collector/{__version__}"
    timeout = 120.0  # an idle keep-alive connection is closed after this many seconds
    # Headers and body go out in two writes; with Nagle's algorithm the body then waits for the client's
    # delayed ACK (~40 ms on Linux) on every keep-alive request. TCP_NODELAY removes that stall.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        """The ``Server`` header: our name and version only."""
        return self.server_version

    def setup(self) -> None:
        """Register the connection so that stopping the server can close it."""
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Log requests only with ``--verbose`` (a busy collector would otherwise flood the terminal), with control
        characters of the request line made visible (see ``text.py``)."""
        if self.server.verbose:
            sys.stderr.write(
                f"{self.address_string()} - - [{self.log_date_time_string()}] {printable(format % args)}\n"
            )

    def do_GET(self) -> None:
        """Dispatch GET."""
        self._dispatch()

    def do_HEAD(self) -> None:
        """Dispatch HEAD (as GET, without the body)."""
        self._dispatch()

    def do_POST(self) -> None:
        """Dispatch POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Dispatch PUT (answered 405 by the routes)."""
        self._dispatch()

    def do_PATCH(self) -> None:
        """Dispatch PATCH (answered 405 by the routes)."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Dispatch DELETE."""
        self._dispatch()

    def do_OPTIONS(self) -> None:
        """Dispatch OPTIONS (CORS preflight on /v1)."""
        self._dispatch()

    def _dispatch(self) -> None:
        app = self.server.app
        split = urlsplit(self.path)
        path = split.path or "/"
        req = Request(
            method="GET" if self.command == "HEAD" else self.command,
            path=path,
            query=parse_qs(split.query),
            headers=dict(self.headers.items()),
            rfile=self.rfile,
            max_body=app.max_body,
            budget=app.inflight,
        )
        try:
            self._answer(app, req, path)
        finally:
            req.reservation.release()

    def _answer(self, app: CollectorApp, req: Request, path: str) -> None:
        try:
            if path.startswith("/v1/") or path == "/v1":
                response = api.handle(app, req)
            elif not app.hosts.allows(req.header("host")):
                response = error_response(403, app.hosts.refusal(req.header("host")))
            elif app.token and not has_token(app.token, req.headers):
                response = _token_answer(app.token, req)
            elif path.startswith("/_admin/"):
                response = admin.handle(app, req)
            else:
                response = web.handle(app, req)
        except Exception as exc:  # noqa: BLE001 - never let a bug kill the connection without an answer
            if not app.stopping.is_set():
                traceback.print_exc(file=sys.stderr)
            response = error_response(500, f"internal error: {type(exc).__name__}: {exc}")
            response.close = True
        if response.hang:
            self.close_connection = True
            return
        # Answered before reading the body (401, 404, 415, 503...): read and drop it now, within the size limit and
        # without keeping it, so the client's keep-alive connection stays usable.
        req.discard_body()
        if req.has_body and not req.body_consumed:
            response.close = True  # unread body bytes would corrupt the next request on this connection
        self._send(response)

    def _send(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if response.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD" and response.body:
                self.wfile.write(response.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
