"""``wsgi.input`` as the app sees it: the server's stream, with what the app reads teed into a :class:`BodyTap`
by the core's :class:`~moesif_core.TeeStream`.

The app reads the body exactly as it would without the middleware (``read()``, ``read(n)``, ``readline()``,
``readlines()``, ``readinto()``, iteration), in its own time; the tap keeps the first ``MAX_BODY_SIZE`` bytes and
counts the rest, so an upload of any size costs the middleware no more than the cap. Nothing is read ahead of the
app. When the response ends, :func:`read_rest` may read what the app left unread (only when the whole body fits in
the cap) so that the event still shows a body the app ignored, as the originals did.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from moesif_core import BodyTap, TeeStream

__all__ = ["TeeStream", "read_rest"]

logger = logging.getLogger("moesif")

#: Read size when the middleware reads the unread rest of a small body itself.
_REST_CHUNK = 64 * 1024


def read_rest(stream: Any, tap: BodyTap, content_length: Optional[int]) -> None:
    """After the response: read the part of a body of known length that the app left unread, when the whole body
    fits in the cap. A body larger than the cap, or of unknown length (chunked), is never read by the middleware.
    Then make the tap's total the declared length, so an unread part shows as truncated. ``stream`` ``None``: read
    nothing, only mark."""
    if content_length is None:
        return
    remaining = content_length - tap.total
    if remaining > 0 and content_length <= tap.limit and stream is not None:
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
