"""A request body stream whose reads are teed into a :class:`~moesif_core.BodyTap` as the app makes them.

Adapters whose framework reads the body from a file-like stream (WSGI's ``wsgi.input``, Django's
``request._stream``) put one in its place: the app reads exactly as it would without the middleware (``read()``,
``read(n)``, ``readline()``, ``readlines()``, ``readinto()``, iteration) and the tap keeps the first
``MAX_BODY_SIZE`` bytes, counting the rest, so an upload of any size costs no more than the cap.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional

from .body import BodyTap


class TeeStream:
    """Wraps a request body stream (WSGI's ``wsgi.input``, Django's ``request._stream``); every byte the app reads
    also goes to ``tap``. Nothing is read that the app does not read."""

    __slots__ = ("_stream", "_tap")

    def __init__(self, stream: Any, tap: BodyTap) -> None:
        self._stream = stream
        self._tap = tap

    # Arguments are passed on exactly as the app gave them, so each server's own defaults and checks apply.
    def read(self, *args: Any, **kwargs: Any) -> Any:
        data = self._stream.read(*args, **kwargs)
        if data:
            self._tap.feed(data)
        return data

    def readline(self, *args: Any, **kwargs: Any) -> Any:
        data = self._stream.readline(*args, **kwargs)
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
