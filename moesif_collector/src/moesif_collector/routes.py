"""Route templates: ``/items/41`` and ``/items/42`` are one route, ``/items/{id}``.

Per-route numbers are only useful when the calls to one endpoint are counted together, and the
collector never sees the app's URL patterns: it only has the paths that were called. So a path
segment that looks like an identifier becomes ``{id}``:

- all digits (``42``);
- UUID-like: 32 hex digits, with or without the usual dashes (``3f2a...-...``);
- long hex: 16 or more hex digits with at least one digit (object ids, hashes, tokens).

Words stay as they are (``/items/new``, ``/users/me``), and so do short hex-looking words
(``/beef``, ``/cafe``). The template is computed once when an event is stored.
"""

from __future__ import annotations

import re

ID = "{id}"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_LONG_HEX = re.compile(r"^(?=[^0-9]*[0-9])[0-9a-fA-F]{16,}$")


def is_identifier(segment: str) -> bool:
    """Whether one path segment looks like an identifier rather than a word."""
    return (segment.isdigit() and segment.isascii()) or bool(_UUID.match(segment) or _LONG_HEX.match(segment))


def route_template(path: str | None) -> str | None:
    """The route a path belongs to: identifier segments replaced by ``{id}`` (``None`` stays ``None``)."""
    if path is None:
        return None
    return "/".join(ID if is_identifier(segment) else segment for segment in path.split("/"))
