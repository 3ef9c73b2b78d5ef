"""``wsgi.input`` as the app sees it: the server's stream, with what the app reads teed into a :class:`BodyTap`.

The app reads the body exactly as it would without the middleware (``read()``, ``read(n)``, ``readline()``,
``readlines()``, ``readinto()``, iteration), in its own time; the tap keeps the first ``MAX_BODY_SIZE`` bytes and
counts the rest, so an upload of any size costs the middleware no more than the cap. Nothing is read ahead of the
app. When the response ends, :func:`read_rest` may read what the app left unread (only when the whole body fits in
the cap) so that the event still shows a body the app ignored, as the originals did.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, List, Optional

from moesif_core import BodyTap

logger = logging.getLogger("moesif")

#: Read size when the middleware reads the unread rest of a small body itself.
_REST_CHUNK = 64 * 1024


class TeeInput:
    """Wraps the server's ``wsgi.input``; every byte the app reads also goes to ``tap``."""

    __slots__ = ("_stream", "_tap")

    def __init__(self, stream: Any, tap: BodyTap) -> None:
        self._stream = stream
        self._tap = tap

    # Arguments are passed on exactly as the app gave them, so each server's own defaults and checks apply.
    def read(self, *args: Any) -> Any:
        data = self._stream.read(*args)
        if data:
            self._tap.feed(data)
        return data

    def readline(self, *args: Any) -> Any:
        data = self._stream.readline(*args)
        if data:
            self._tap.feed(data)
        return data

    def readlines(self, *args: Any) -> List[Any]:
        lines: List[Any] = self._stream.readlines(*args)
        feed = self._tap.feed
        for line in lines:
            feed(line)
        return lines

    def readinto(self, buffer: Any) -> Optional[int]:
        readinto = getattr(self._stream, "readinto", None)
        n: Optional[int]
        if readinto is None:  # a server stream without readinto: emulate it with read
            view = memoryview(buffer).cast("B")
            data = self._stream.read(len(view))
            n = len(data)
            view[:n] = data
        else:
            n = readinto(buffer)
            if not n:  # 0 at the end, None from a non-blocking stream with nothing yet
                return n
            view = memoryview(buffer).cast("B")
        tap = self._tap
        if n and tap.kept < tap.limit:
            tap.feed(view[:n].tobytes())
        elif n:
            tap.total += n  # past the cap: count without copying
        return n

    def __iter__(self) -> Iterator[Any]:
        feed = self._tap.feed
        for line in self._stream:
            feed(line)
            yield line

    def __getattr__(self, name: str) -> Any:
        # Anything else (close, fileno, seekable, a server's own extras) is the server stream's.
        return getattr(self._stream, name)

    @property
    def stream(self) -> Any:
        """The server's own stream."""
        return self._stream


def read_rest(stream: Any, tap: BodyTap, content_length: Optional[int]) -> None:
    """After the response: read the part of a body of known length that the app left unread, when the whole body
    fits in the cap. A body larger than the cap, or of unknown length (chunked), is never read by the middleware.
    Then make the tap's total the declared length, so an unread part shows as truncated."""
    if content_length is None:
        return
    remaining = content_length - tap.total
    if remaining > 0 and content_length <= tap.limit:
        try:
            while remaining > 0:
                chunk = stream.read(min(remaining, _REST_CHUNK))
                if not chunk:
                    break
                tap.feed(chunk)
                remaining -= len(chunk)
        except Exception:  # the client went away, or the server closed the stream: keep what we have
            logger.debug("moesif: could not read the rest of the request body", exc_info=True)
    if content_length > tap.total:
        tap.total = content_length
