"""JSON in the worker: orjson where it is installed (a dependency on CPython), the standard library otherwise.

Parsing captured bodies and serialising batches is most of the worker's time; with the standard library a 2 KB
body each way costs ~300 us per event, with orjson ~50 us. The worker shares the GIL with the app, so this is time
given back to the app's own threads. Both paths give the same JSON for the same input; orjson refuses a few things
the standard library accepts (NaN, integers beyond 64 bits, non-string keys), and then we fall back to it.
"""

from __future__ import annotations

import json
import re
from typing import Any


def _default(value: Any) -> Any:
    """Values JSON cannot hold: dates as ISO-8601, anything else as its ``str``."""
    iso = getattr(value, "isoformat", None)
    if callable(iso):
        return iso()
    return str(value)


_ESCAPED_SURROGATE = re.compile(rb"\\[uU][dD][89a-fA-F]").search


def _checked(value: Any, data: bytes) -> Any:
    """``"\\ud800"`` is valid JSON for a string UTF-8 cannot hold: such a body is treated as not JSON (it goes as
    base64) rather than sinking the batch it would be serialised in."""
    if _ESCAPED_SURROGATE(data):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("JSON with a lone surrogate") from exc
    return value


def _std_dumps(obj: Any) -> bytes:
    try:
        return json.dumps(obj, default=_default, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except RecursionError as exc:  # absurd nesting: say so as a ValueError callers handle
        raise ValueError("too deeply nested to serialise") from exc


try:
    import orjson

    _OPTIONS = orjson.OPT_NON_STR_KEYS

    def loads(data: bytes) -> Any:
        """Parse JSON; raises ``ValueError`` (or ``RecursionError``) when it is not valid JSON."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            # integers beyond 64 bits (or lone surrogates) are valid JSON orjson will not take
            return _checked(json.loads(data), data)

    def dumps(obj: Any) -> bytes:
        """Serialise for the wire; values JSON cannot hold go as their ``str``."""
        try:
            return orjson.dumps(obj, default=_default, option=_OPTIONS)
        except (TypeError, orjson.JSONEncodeError):
            return _std_dumps(obj)

    ACCELERATED = True
except ImportError:  # PyPy, or a platform without a wheel
    ACCELERATED = False

    def loads(data: bytes) -> Any:
        return _checked(json.loads(data), data)

    def dumps(obj: Any) -> bytes:
        return _std_dumps(obj)
