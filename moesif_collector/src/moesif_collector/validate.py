"""Shape checks for ingested payloads.

The collector is the test double for our own middleware, so it is strict about what the wire format
(docs/wire.md) requires and precise about what is wrong ("events[3].request.uri must be a string"): a
middleware bug then fails a test with a readable reason instead of storing something half-right.
Everything not required is stored as sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .body import BodyError

# Required id fields per profile kind (docs/wire.md, "Profiles").
PROFILE_IDS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "companies": ("company_id",),
    "subscriptions": ("subscription_id", "company_id"),
}


def _fail(message: str) -> BodyError:
    return BodyError(400, message)


def as_items(payload: Any, batch: bool, noun: str) -> list[Mapping[str, Any]]:
    """Return the objects of a batch (a JSON array) or single (a JSON object) payload."""
    if batch:
        if not isinstance(payload, list):
            raise _fail(f"a {noun} batch must be a JSON array of objects, got {type_name(payload)}")
        for index, item in enumerate(payload):
            if not isinstance(item, dict):
                raise _fail(f"{noun}[{index}] must be a JSON object, got {type_name(item)}")
        return payload
    if not isinstance(payload, dict):
        raise _fail(f"a single {noun} must be a JSON object, got {type_name(payload)}")
    return [payload]


def type_name(value: Any) -> str:
    """JSON type name of a parsed value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def check_event(event: Mapping[str, Any], where: str) -> None:
    """An API call event needs a ``request`` with ``time``, ``uri`` and ``verb`` strings.

    ``response`` may be absent or null (a call still in flight), but when present it is an object
    whose ``status``, if given, is an integer.
    """
    request = event.get("request")
    if not isinstance(request, dict):
        raise _fail(f"{where}.request must be a JSON object, got {type_name(request)}")
    for key in ("time", "uri", "verb"):
        if not isinstance(request.get(key), str) or not request[key]:
            raise _fail(f"{where}.request.{key} must be a non-empty string")
    response = event.get("response")
    if response is None:
        return
    if not isinstance(response, dict):
        raise _fail(f"{where}.response must be a JSON object or null, got {type_name(response)}")
    status = response.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 999):
        raise _fail(f"{where}.response.status must be an integer from 0 to 999 (an HTTP status)")


def check_profile(kind: str, item: Mapping[str, Any], where: str) -> None:
    """A profile needs its id fields as non-empty strings (numbers are accepted and kept as sent)."""
    for key in PROFILE_IDS[kind]:
        value = item.get(key)
        ok = (isinstance(value, str) and value.strip() != "") or (
            isinstance(value, int) and not isinstance(value, bool)
        )
        if not ok:
            raise _fail(f"{where}.{key} is required (a non-empty string)")


def unstorable(items: Sequence[Any], label: str, batch: bool) -> str:
    """Where the first value JSON text cannot carry is (a lone surrogate such as ``"\\ud800"``, which UTF-8
    cannot encode, or a number that overflowed to infinity such as ``1e999``), for the 400 message.

    Called only after storing failed, so valid payloads never pay for the walk.
    """
    for index, item in enumerate(items):
        found = _first_unstorable(item, f"{label}[{index}]" if batch else label)
        if found is not None:
            return found
    return "the payload holds a value that cannot be stored as JSON text"


def _first_unstorable(value: Any, where: str) -> str | None:
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        current, path = stack.pop()
        if isinstance(current, str):
            bad = next((c for c in current if 0xD800 <= ord(c) <= 0xDFFF), None)
            if bad is not None:
                return f"{path} holds a lone surrogate ({bad!a}), which UTF-8 cannot encode"
        elif isinstance(current, float) and not math.isfinite(current):
            return f"{path} is a number out of range ({current!r}: JSON numbers must be finite)"
        elif isinstance(current, dict):
            for key, item in reversed(list(current.items())):
                key_where = f"{path}.{_key_text(key)}"
                if isinstance(key, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in key):
                    return f"{key_where} (a key) holds a lone surrogate, which UTF-8 cannot encode"
                stack.append((item, key_where))
        elif isinstance(current, list):
            stack.extend((item, f"{path}[{i}]") for i, item in reversed(list(enumerate(current))))
    return None


def _key_text(key: Any) -> str:
    return ascii(key)[1:-1] if isinstance(key, str) else str(key)
