"""Body capture on the request path, body encoding in the worker.

:class:`BodyTap` is what an adapter feeds chunks into as they pass: it keeps at most ``limit`` bytes and counts
the rest, so an upload or a download of any size costs the middleware no more than the cap.
:func:`encode_body` turns the kept bytes into the wire form: parsed JSON when the body is a JSON object or array,
base64 of the raw bytes otherwise (forms, text, binary, malformed JSON, truncated bodies).
"""

from __future__ import annotations

import base64
from typing import Any, List, Optional, Tuple

from .jsoncodec import Embedded, as_written, loads

#: The ``metadata`` key that marks a body cut at ``MAX_BODY_SIZE``: ``{"request": <bytes seen>, ...}``.
TRUNCATED_METADATA_KEY = "moesif_body_truncated"


class BodyTap:
    """Keeps the first ``limit`` bytes of a body seen in chunks, and the total size."""

    __slots__ = ("limit", "chunks", "kept", "total", "_buffer")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: the kept chunks while there is only one (the common case: no copy); then one growing buffer, so many
        #: tiny chunks cost their bytes, not an object each
        self.chunks: List[bytes] = []
        self._buffer: Optional[bytearray] = None
        self.kept = 0
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        if type(chunk) is memoryview and chunk.itemsize != 1:  # type: ignore[comparison-overlap]
            chunk = chunk.cast("B")  # a view of wider items (array('H')): count and cut bytes, not items
        n = len(chunk)
        self.total += n
        room = self.limit - self.kept
        if room <= 0 or not n:
            return
        if n > room:
            chunk = chunk[:room]
            n = room
        if self._buffer is not None:
            self._buffer += chunk
        elif self.chunks:
            self._buffer = bytearray(self.chunks[0])
            self._buffer += chunk
            self.chunks = []
        else:
            self.chunks.append(bytes(chunk))
        self.kept += n

    @property
    def truncated(self) -> bool:
        return self.total > self.kept

    def data(self) -> bytes:
        """The kept bytes. Called by the worker, not on the request path."""
        if self._buffer is not None:
            return bytes(self._buffer)
        return self.chunks[0] if self.chunks else b""


#: How a JSON object or array starts (after any whitespace): a body that starts otherwise is not parsed.
_JSON_STARTS = (b"{", b"[")


def encode_body(data: Optional[bytes], truncated: bool = False) -> Tuple[Any, Optional[str]]:
    """Return ``(body, transfer_encoding)`` for the event.

    ``(None, None)`` for no body; ``(parsed, "json")`` for a whole JSON object or array; otherwise
    ``(base64 string, "base64")``. A truncated body is never parsed: half a JSON document is not JSON.
    """
    if not data:
        return None, None
    if not truncated:
        parsed = json_body(data)
        if parsed is not None:
            return parsed, "json"
    return base64.b64encode(data).decode("ascii"), "base64"


def json_body(data: bytes) -> Any:
    """The JSON object or array a body holds, parsed; ``None`` when it holds none (the one rule for "is this body
    JSON", for events and for ``request.body.*`` governance rules alike)."""
    if data.lstrip()[:1] not in _JSON_STARTS:
        return None
    try:
        return loads(data)
    except Exception:  # noqa: BLE001 - ValueError, UnicodeDecodeError, RecursionError: all mean "not JSON"
        return None


def json_as_written(data: bytes) -> Optional[Embedded]:
    """A JSON object or array body as its own bytes, for a batch to copy in (:func:`~moesif_core.jsoncodec.as_written`:
    parsed only as the check); ``None`` when that check is not enough to tell, and :func:`json_body` decides."""
    if data.lstrip()[:1] not in _JSON_STARTS:
        return None
    return as_written(data)
