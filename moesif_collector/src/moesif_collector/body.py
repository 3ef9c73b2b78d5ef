"""Reading and decoding request bodies safely.

Every failure becomes a :class:`BodyError` carrying the HTTP status and a message for the client, so
the handler can always answer with clean JSON. Limits apply both to the bytes on the wire and to the
decompressed size, so a small gzip bomb is refused as surely as a huge upload.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any, Protocol

DEFAULT_MAX_BODY = 50 * 1024 * 1024  # 50 MiB, on the wire and after decompression

_JSON_TYPES = ("application/json", "text/json")


class Readable(Protocol):
    """What the body reader needs from a request stream (``rfile`` of the stdlib handler)."""

    def read(self, size: int = ..., /) -> bytes:
        """Read up to ``size`` bytes."""

    def readline(self, size: int = ..., /) -> bytes:
        """Read one line of at most ``size`` bytes."""


class BodyError(Exception):
    """A request body that cannot be accepted; ``status`` is the HTTP status to answer with.

    ``drained`` tells whether the body was fully read, i.e. whether the connection can stay open.
    """

    def __init__(self, status: int, message: str, drained: bool = True) -> None:
        """Keep the status, the client-facing message and whether the body was consumed."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.drained = drained


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def read_raw(rfile: Readable, headers: Mapping[str, str], max_bytes: int) -> bytes:
    """Read the request body as sent (``Content-Length`` or chunked), refusing more than ``max_bytes``."""
    transfer = (_header(headers, "Transfer-Encoding") or "").lower()
    if "chunked" in transfer:
        return _read_chunked(rfile, max_bytes)
    length_text = _header(headers, "Content-Length")
    if length_text is None:
        raise BodyError(411, "a Content-Length header (or chunked transfer encoding) is required")
    try:
        length = int(length_text)
    except ValueError:
        raise BodyError(400, "Content-Length is not a number", drained=False) from None
    if length < 0:
        raise BodyError(400, "Content-Length is negative", drained=False)
    if length > max_bytes:
        raise BodyError(413, f"body of {length} bytes is over the {max_bytes} byte limit", drained=False)
    data = rfile.read(length)
    if len(data) != length:
        raise BodyError(400, f"body ended after {len(data)} of {length} bytes", drained=False)
    return data


def _read_chunked(rfile: Readable, max_bytes: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise BodyError(400, "malformed chunked body", drained=False)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BodyError(400, "malformed chunk size", drained=False) from None
        if size == 0:
            # Trailer section: header lines until an empty line.
            while True:
                trailer = rfile.readline(8192)
                if trailer in (b"\r\n", b"\n", b""):
                    return b"".join(parts)
        total += size
        if total > max_bytes:
            raise BodyError(413, f"chunked body is over the {max_bytes} byte limit", drained=False)
        chunk = rfile.read(size)
        if len(chunk) != size or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise BodyError(400, "chunked body ended early", drained=False)
        parts.append(chunk)


def decode(raw: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, x-gzip, deflate or identity), bounded by ``max_bytes``."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        return _inflate(raw, zlib.MAX_WBITS | 16, max_bytes, "gzip")
    if encoding == "deflate":
        return _inflate(raw, zlib.MAX_WBITS, max_bytes, "deflate")
    raise BodyError(415, f"unsupported Content-Encoding {content_encoding!r} (use gzip or none)")


def _inflate(raw: bytes, wbits: int, max_bytes: int, name: str) -> bytes:
    out: list[bytes] = []
    total = 0
    data = raw
    while True:  # gzip allows several members back to back
        inflater = zlib.decompressobj(wbits)
        try:
            while data:
                piece = inflater.decompress(data, max_bytes + 1 - total)
                total += len(piece)
                out.append(piece)
                if total > max_bytes:
                    raise BodyError(413, f"{name} body inflates past the {max_bytes} byte limit")
                data = inflater.unconsumed_tail
                if inflater.eof:
                    break
        except zlib.error as exc:
            raise BodyError(400, f"body is not valid {name} data: {exc}") from None
        if not inflater.eof:
            raise BodyError(400, f"{name} body is truncated")
        data = inflater.unused_data
        if not data or name != "gzip":
            if data:
                raise BodyError(400, f"trailing bytes after the {name} data")
            return b"".join(out)


def check_content_type(content_type: str | None) -> None:
    """Accept a missing Content-Type or a JSON one; refuse anything else with 415.

    Real clients all send ``application/json; charset=utf-8``. Refusing e.g. a form-encoded body makes
    a client bug visible at once, instead of storing garbage that looks like data.
    """
    if content_type is None or not content_type.strip():
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES or media.endswith("+json"):
        return
    raise BodyError(415, f"Content-Type {content_type!r} is not JSON (send application/json)")


def parse_json(data: bytes) -> Any:
    """Parse a JSON document (UTF-8, or UTF-16/32 with a BOM as ``json.loads`` detects)."""
    if not data.strip():
        raise BodyError(400, "body is empty (expected JSON)")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BodyError(400, f"body is not valid JSON: {exc}") from None
