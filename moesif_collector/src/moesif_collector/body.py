"""Reading and decoding request bodies safely.

Every failure becomes a :class:`BodyError` carrying the HTTP status and a message for the client, so
the handler can always answer with clean JSON. Limits apply both to the bytes on the wire and to the
decompressed size, so a small gzip bomb is refused as surely as a huge upload.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from typing import Any, Callable, Protocol

DEFAULT_MAX_BODY = 50 * 1024 * 1024  # 50 MiB, on the wire and after decompression

_JSON_TYPES = ("application/json", "text/json")


class Readable(Protocol):
    """What the body reader needs from a request stream (``rfile`` of the stdlib handler)."""

    def read(self, size: int = ..., /) -> bytes:
        """Read up to ``size`` bytes."""

    def readline(self, size: int = ..., /) -> bytes:
        """Read one line of at most ``size`` bytes."""


#: Called with a byte count before that many more bytes are held in memory; raises BodyError to refuse.
Reserve = Callable[[int], None]


class BodyError(Exception):
    """A request body that cannot be accepted; ``status`` is the HTTP status to answer with.

    ``drained`` tells whether the body was fully read, i.e. whether the connection can stay open.
    """

    def __init__(self, status: int, message: str, drained: bool = True, headers: dict[str, str] | None = None) -> None:
        """Keep the status, the client-facing message, whether the body was consumed, and headers to answer with."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.drained = drained
        self.headers = headers or {}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


_DIGITS = re.compile(rb"[0-9]{1,19}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_MAX_TRAILER_BYTES = 16 * 1024  # trailer lines after the last chunk, read and ignored
_INFLATE_STEP = 1024 * 1024  # inflate in 1 MiB pieces, each reserved before the next one is made


def content_length(text: str | None) -> int | None:
    """The value of a ``Content-Length`` header: ASCII digits only (no sign, space, ``_`` or other digits).

    ``int()`` alone would accept ``+5``, `` 5``, ``5_0`` and non-ASCII digits; HTTP allows none of them.
    Raises :class:`BodyError` (400) for anything else; ``None`` when the header is absent.
    """
    if text is None:
        return None
    raw = text.strip().encode("latin-1", "replace")
    if not _DIGITS.fullmatch(raw):
        raise BodyError(400, f"Content-Length {text[:40]!r} is not a non-negative decimal number", drained=False)
    return int(raw)


def read_raw(rfile: Readable, headers: Mapping[str, str], max_bytes: int, reserve: Reserve | None = None) -> bytes:
    """Read the request body as sent (``Content-Length`` or chunked), refusing more than ``max_bytes``.

    ``reserve(n)`` is called before ``n`` more bytes are read into memory (see ``inflight.py``); it raises
    :class:`BodyError` when they cannot be held now.
    """
    transfer = (_header(headers, "Transfer-Encoding") or "").lower()
    if "chunked" in transfer:
        return _read_chunked(rfile, max_bytes, reserve)
    length = content_length(_header(headers, "Content-Length"))
    if length is None:
        raise BodyError(411, "a Content-Length header (or chunked transfer encoding) is required")
    if length > max_bytes:
        raise BodyError(413, f"body of {length} bytes is over the {max_bytes} byte limit", drained=False)
    if reserve is not None:
        reserve(length)
    data = rfile.read(length)
    if len(data) != length:
        raise BodyError(400, f"body ended after {len(data)} of {length} bytes", drained=False)
    return data


def chunk_size(line: bytes) -> int:
    """The size in a chunk-size line: hex digits only, optionally followed by ``;extensions``.

    ``int(..., 16)`` alone would take ``-1`` (and then ``read(-1)`` reads to the end of the stream, without
    any bound), ``+a``, ``0x10`` or ``1_0``; RFC 9112 allows only ``1*HEXDIG``.
    """
    size_text = line.split(b";", 1)[0].rstrip(b" \t\r\n")
    if not _HEX.fullmatch(size_text):
        raise BodyError(400, f"malformed chunk size {size_text[:20]!r} (expected hex digits)", drained=False)
    return int(size_text, 16)


def _read_chunked(rfile: Readable, max_bytes: int, reserve: Reserve | None, keep: bool = True) -> bytes:
    """Read a chunked body; with ``keep=False`` the chunks are read and dropped (see :func:`drain`)."""
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise BodyError(400, "malformed chunked body", drained=False)
        size = chunk_size(line)
        if size == 0:
            _skip_trailers(rfile)
            return b"".join(parts)
        total += size
        if total > max_bytes:
            raise BodyError(413, f"chunked body is over the {max_bytes} byte limit", drained=False)
        if keep:
            if reserve is not None:
                reserve(size)
            chunk = rfile.read(size)
            complete = len(chunk) == size
            parts.append(chunk)
        else:
            complete = _skip(rfile, size)
        if not complete or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise BodyError(400, "chunked body ended early", drained=False)


def _skip_trailers(rfile: Readable) -> None:
    """Read the trailer section (header lines up to an empty line), bounded in total size."""
    seen = 0
    while True:
        trailer = rfile.readline(8192)
        if trailer in (b"\r\n", b"\n", b""):
            return
        seen += len(trailer)
        if seen > _MAX_TRAILER_BYTES or not trailer.endswith(b"\n"):
            raise BodyError(400, f"chunked trailer section is over {_MAX_TRAILER_BYTES} bytes", drained=False)


def drain(rfile: Readable, headers: Mapping[str, str], max_bytes: int) -> bool:
    """Read and discard a body nobody needs (answered before reading it), keeping at most 64 KiB in memory.

    Returns whether the body was fully consumed (so the connection can carry another request).
    """
    try:
        if "chunked" in (_header(headers, "Transfer-Encoding") or "").lower():
            _read_chunked(rfile, max_bytes, None, keep=False)
            return True
        length = content_length(_header(headers, "Content-Length")) or 0
    except BodyError:
        return False
    return length <= max_bytes and _skip(rfile, length)


def _skip(rfile: Readable, length: int) -> bool:
    """Read and drop ``length`` bytes, 64 KiB at a time; whether they all came."""
    while length > 0:
        piece = rfile.read(min(length, 65536))
        if not piece:
            return False
        length -= len(piece)
    return True


def decode(raw: bytes, content_encoding: str | None, max_bytes: int, reserve: Reserve | None = None) -> bytes:
    """Undo ``Content-Encoding`` (gzip, x-gzip, deflate or identity), bounded by ``max_bytes``.

    ``reserve`` is called for the inflated bytes as they are produced (as in :func:`read_raw`).
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        return _inflate(raw, zlib.MAX_WBITS | 16, max_bytes, "gzip", reserve)
    if encoding == "deflate":
        return _inflate(raw, zlib.MAX_WBITS, max_bytes, "deflate", reserve)
    raise BodyError(415, f"unsupported Content-Encoding {content_encoding!r} (use gzip or none)")


def _inflate(raw: bytes, wbits: int, max_bytes: int, name: str, reserve: Reserve | None) -> bytes:
    out: list[bytes] = []
    total = 0
    data = raw
    while True:  # gzip allows several members back to back
        inflater = zlib.decompressobj(wbits)
        try:
            while data:
                piece = inflater.decompress(data, min(max_bytes + 1 - total, _INFLATE_STEP))
                if reserve is not None:
                    reserve(len(piece))
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


def _no_constant(name: str) -> Any:
    raise BodyError(400, f"body is not valid JSON: {name} is not a JSON number (JSON has no NaN or Infinity)")


def parse_json(data: bytes) -> Any:
    """Parse a JSON document (UTF-8, or UTF-16/32 with a BOM as ``json.loads`` detects).

    ``NaN``, ``Infinity`` and ``-Infinity`` are refused: the standard library accepts them, but stored they would
    make every later answer that contains them invalid JSON (the page's detail view could not show the call).
    """
    if not data.strip():
        raise BodyError(400, "body is empty (expected JSON)")
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BodyError(400, f"body is not valid JSON: {exc}") from None
