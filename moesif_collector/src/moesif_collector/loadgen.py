"""Realistic sample events and a tiny stdlib sender.

Used by ``moesif-collector send-sample`` (demo traffic), by the benchmark and by the tests (the
functions are importable, so ``multiprocessing`` workers can run them). The events follow docs/wire.md:
every key present, UTC millisecond times, JSON or base64 bodies.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import random
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from . import __version__
from .timefmt import format_time, utc_now

_ROUTES = [
    ("GET", "/api/items", 200),
    ("GET", "/api/items/42", 200),
    ("POST", "/api/items", 201),
    ("GET", "/api/users/me", 200),
    ("PUT", "/api/items/7", 204),
    ("GET", "/api/missing", 404),
    ("POST", "/api/login", 401),
    ("POST", "/api/orders", 500),
    ("GET", "/health", 200),
    ("GET", "/redirect", 302),
]


def sample_event(index: int, rng: random.Random | None = None, now: datetime | None = None) -> dict[str, Any]:
    """One realistic incoming API call event (about 1 KiB of JSON)."""
    rng = rng or random.Random(index)
    verb, path, status = _ROUTES[index % len(_ROUTES)]
    started = (now or utc_now()) - timedelta(milliseconds=rng.randint(0, 500))
    finished = started + timedelta(milliseconds=rng.randint(1, 250))
    txid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    user = f"user-{rng.randint(1, 20)}" if rng.random() < 0.8 else None
    request_body: Any = None
    request_encoding: str | None = None
    if verb in ("POST", "PUT"):
        if index % 3 == 0:
            request_body = base64.b64encode(f"name=item{index}&qty={rng.randint(1, 9)}".encode()).decode()
            request_encoding = "base64"
        else:
            request_body = {"name": f"item-{index}", "qty": rng.randint(1, 9), "tags": ["a", "b"]}
            request_encoding = "json"
    response_body: Any = None
    response_encoding: str | None = None
    if status not in (204, 302):
        response_body = {"id": index, "ok": status < 400, "items": [{"id": n, "v": n * 2} for n in range(3)]}
        response_encoding = "json"
    return {
        "request": {
            "time": format_time(started),
            "uri": f"https://api.example.com{path}?page={rng.randint(1, 5)}",
            "verb": verb,
            "api_version": None,
            "ip_address": f"192.0.2.{rng.randint(1, 254)}",
            "headers": {
                "Host": "api.example.com",
                "User-Agent": "sample-client/1.0",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Authorization": "Bearer <redacted>",
                "X-Moesif-Transaction-Id": txid,
            },
            "body": request_body,
            "transfer_encoding": request_encoding,
        },
        "response": {
            "time": format_time(finished),
            "status": status,
            "ip_address": None,
            "headers": {
                "Content-Type": "application/json",
                "Cache-Control": "no-store",
                "X-Moesif-Transaction-Id": txid,
            },
            "body": response_body,
            "transfer_encoding": response_encoding,
        },
        "user_id": user,
        "company_id": f"company-{rng.randint(1, 5)}" if user else None,
        "session_token": None,
        "tags": None,
        "metadata": {"sample": True, "index": index},
        "direction": "Incoming",
        "weight": 1,
        "blocked_by": None,
        "transaction_id": txid,
    }


def encode_body(payload: Any, use_gzip: bool = True) -> bytes:
    """Serialise a payload as the middlewares do: compact JSON, gzipped unless told otherwise."""
    data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return gzip.compress(data, compresslevel=6) if use_gzip else data


class Sender:
    """A keep-alive HTTP/1.1 connection to a collector, for posting payloads quickly."""

    def __init__(self, base_url: str, app_id: str = "sample-app", timeout: float = 30.0) -> None:
        """Prepare a connection to ``base_url`` (``http://host:port``), sent with ``app_id``."""
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http://host:port URL, got {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._timeout = timeout
        self.app_id = app_id
        self._conn: http.client.HTTPConnection | None = None

    def post(self, path: str, payload: Any, use_gzip: bool = True) -> tuple[int, dict[str, str], bytes]:
        """POST a JSON payload; returns (status, headers, body). Reconnects once if the server closed."""
        return self.post_raw(path, encode_body(payload, use_gzip), use_gzip)

    def post_raw(self, path: str, body: bytes, gzipped: bool = True) -> tuple[int, dict[str, str], bytes]:
        """POST an already encoded JSON body (gzipped when ``gzipped``); see :meth:`post`."""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Moesif-Application-Id": self.app_id,
            "User-Agent": f"moesif-collector-loadgen/{__version__}",
        }
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            try:
                self._conn.request("POST", path, body=body, headers=headers)
                resp = self._conn.getresponse()
                data = resp.read()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                self.close()
                if attempt == 2:
                    raise
                continue
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            return resp.status, dict(resp.getheaders()), data
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection (a later post reconnects)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def send_batches(
    base_url: str, batches: int, batch_size: int = 100, seed: int = 0, app_id: str = "sample-app", use_gzip: bool = True
) -> int:
    """Post ``batches`` batches of ``batch_size`` sample events; returns how many were accepted (201).

    A module-level function so that ``multiprocessing`` workers (spawned processes) can run it.
    """
    rng = random.Random(seed)
    sender = Sender(base_url, app_id)
    accepted = 0
    try:
        for b in range(batches):
            events = [sample_event(seed * 1_000_000 + b * batch_size + i, rng) for i in range(batch_size)]
            status, _, _ = sender.post("/v1/events/batch", events, use_gzip)
            if status == 201:
                accepted += len(events)
    finally:
        sender.close()
    return accepted
