"""JSON in the worker: orjson where it is installed (a dependency on CPython), the standard library otherwise.

Parsing captured bodies and serialising batches is most of the worker's time; with the standard library a 2 KB
body each way costs ~300 us per event, with orjson ~50 us. The worker shares the GIL with the app, so this is time
given back to the app's own threads. Both paths give the same JSON for the same input; orjson refuses a few things
the standard library accepts (NaN, lone surrogates, non-string keys), and then we fall back to it.

Integers beyond 64 bits are the exception: orjson (3.10 on) parses them as floats instead of refusing them, so
``{"id": 18446744073709551616}`` would be shipped as ``1.8446744073709552e+19``, a different number. A body with a
run of 20 digits, or a minus and 19 (every integer outside orjson's exact range has one), is parsed by the standard
library, which keeps every integer exact; the scan costs a few microseconds per 1.6 KB.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

#: The deepest nesting orjson writes (a deeper document is serialised by the standard library, or not at all).
MAX_NESTING = 254


class Embedded:
    """A JSON value already serialised (:func:`embed`): a batch copies its bytes as they are.

    Why: the worker parses a captured JSON body (to check it is JSON and to mask it) and used to keep the parsed
    tree in its event until the batch was serialised. A 2 KB body is some 35 dicts and lists; a batch of them is
    thousands of container objects alive at once, which is what makes the cyclic GC run its costly older
    generations in the app's process. Serialised at once, the tree is freed at once and the batch holds bytes."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _default(value: Any) -> Any:
    """Values JSON cannot hold: dates as ISO-8601, anything else as its ``str``."""
    if type(value) is Embedded:
        return loads(value.data)  # the standard library's path: it cannot copy bytes in, so it parses them again
    iso = getattr(value, "isoformat", None)
    if callable(iso):
        return iso()
    return str(value)


#: A surrogate as an escape (``\\ud800``) or as raw bytes (ED A0..BF: not UTF-8, but ``json.loads`` of bytes
#: decodes with ``surrogatepass`` and takes them).
_SURROGATE = re.compile(rb"\\[uU][dD][89a-fA-F]|\xed[\xa0-\xbf]").search
#: Every digit becomes ``0``, a minus stays, anything else becomes a space. An integer outside orjson's exact range
#: (-2^63 .. 2^64-1) then shows as 20 zeros in a row, or a minus and 19 zeros; 19-digit ids (snowflakes, below 2^63)
#: stay with orjson. C passes only: 2-4 us for 1.6 KB, where a regex takes ~20 us and orjson's whole parse ~14 us.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else b if b == 0x2D else 0x20 for b in range(256))
_TWENTY_DIGITS = b"0" * 20
_MINUS_NINETEEN_DIGITS = b"-" + b"0" * 19


def _long_digits(data: bytes) -> bool:
    shape = data.translate(_DIGITS_AS_ZERO)
    return _TWENTY_DIGITS in shape or _MINUS_NINETEEN_DIGITS in shape


def _checked(value: Any, data: bytes) -> Any:
    """``"\\ud800"`` is valid JSON for a string UTF-8 cannot hold (and the standard library also takes it as raw
    bytes): such a body is treated as not JSON (it goes as base64) rather than sinking the batch it would be
    serialised in."""
    if _SURROGATE(data):
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
    _Fragment = orjson.Fragment

    def _orjson_default(value: Any) -> Any:
        if type(value) is Embedded:
            return _Fragment(value.data)  # copied into the output as it is
        return _default(value)

    def loads(data: bytes) -> Any:
        """Parse JSON; raises ``ValueError`` (or ``RecursionError``) when it is not valid JSON."""
        if len(data) >= 20 and _long_digits(data):  # a big integer orjson would make a float: json keeps it exact
            return _checked(json.loads(data), data)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            # integers beyond 64 bits (or lone surrogates) are valid JSON orjson will not take
            return _checked(json.loads(data), data)

    def dumps(obj: Any) -> bytes:
        """Serialise for the wire; values JSON cannot hold go as their ``str``."""
        try:
            # without OPT_NON_STR_KEYS first: it makes every dict slower (a batch ~1.5x), and only a user's
            # metadata ever has a non-string key; such a dict raises here and the batch is serialised with it
            return orjson.dumps(obj, default=_orjson_default)
        except (TypeError, orjson.JSONEncodeError):
            pass
        try:
            return orjson.dumps(obj, default=_orjson_default, option=_OPTIONS)
        except (TypeError, orjson.JSONEncodeError):
            return _std_dumps(obj)

    def embed(value: Any) -> Any:
        """``value`` serialised now, for a batch to copy in (:class:`Embedded`); ``value`` itself if it cannot
        be (the batch's own fallbacks then deal with it)."""
        try:
            return Embedded(dumps(value))
        except ValueError:
            return value

    def as_written(data: bytes) -> Optional[Embedded]:
        """``data`` itself, for a batch to copy in, when orjson parses it: then it is JSON a batch can hold (valid
        UTF-8, no lone surrogate, not nested too deep), so the parse is the whole check and nothing is serialised
        again (half the cost of :func:`embed` for a 2 KB body). The batch holds the body as written: its spacing
        and escapes, and big integers exact (orjson would read them as floats; here the bytes are not read back).
        ``None`` when orjson does not take it, or when it may nest deeper than orjson writes (more than
        :data:`MAX_NESTING` brackets and braces: a document we could not have written ourselves must not sink the
        batch at the collector): :func:`loads` then decides, as for any body."""
        if data.count(b"[") + data.count(b"{") > MAX_NESTING:
            return None
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return Embedded(data)

    ACCELERATED = True
except ImportError:  # PyPy, or a platform without a wheel
    ACCELERATED = False

    def loads(data: bytes) -> Any:
        return _checked(json.loads(data), data)

    def dumps(obj: Any) -> bytes:
        return _std_dumps(obj)

    def embed(value: Any) -> Any:
        """Without orjson a batch cannot copy bytes in: the value stays as it is."""
        return value

    def as_written(data: bytes) -> Optional[Embedded]:
        """Without orjson a batch cannot copy bytes in: every body is parsed."""
        return None
