"""The request's full URL, rebuilt from the environ as PEP 3333 describes.

``PATH_INFO`` and ``SCRIPT_NAME`` arrive percent-decoded and latin-1-decoded (one character per byte), so any byte
that is not safe in a URI path (non-ASCII, from a UTF-8 or a non-UTF-8 path alike, or ``%``, ``?``, ``#``, space)
is percent-encoded again: the result is always a valid URI, whatever bytes the client sent. The common case (a
plain ASCII path) costs one regex scan and no encoding.
"""

from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import quote

#: RFC 3986 ``pchar`` plus ``/``: what may stay as is in a path.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_PATH_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9/:@!$&'()*+,;=._~-]").search
#: In a query string only bytes outside printable ASCII are encoded (the query arrives raw, not decoded).
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
_QUERY_NEEDS_QUOTING = re.compile(r"[^\x21-\x7e]").search

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _bytes(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # a server that put non-latin-1 text in the environ (not PEP 3333, but seen)
        return text.encode("utf-8", "surrogateescape")


def quote_path(path: str) -> str:
    if _PATH_NEEDS_QUOTING(path) is None:
        return path
    return quote(_bytes(path), safe=_PATH_SAFE)


def quote_query(query: str) -> str:
    if _QUERY_NEEDS_QUOTING(query) is None:
        return query
    return quote(_bytes(query), safe=_QUERY_SAFE)


def request_uri(environ: Mapping[str, Any]) -> str:
    """``scheme://host[:port]/script/path?query`` for this request."""
    scheme = environ.get("wsgi.url_scheme") or "http"
    host = environ.get("HTTP_HOST")
    if not host:
        host = environ.get("SERVER_NAME") or "localhost"
        port = environ.get("SERVER_PORT")
        if port and port != _DEFAULT_PORTS.get(scheme):
            host = f"{host}:{port}"
    elif _QUERY_NEEDS_QUOTING(host) is not None:
        host = quote_query(host)
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    uri = f"{scheme}://{host}{quote_path(path) if path else '/'}"
    query = environ.get("QUERY_STRING")
    if query:
        uri = f"{uri}?{quote_query(query)}"
    return uri
