"""Who made the call and from where: user id from the authorization headers, client IP from forwarding headers.

Everything here takes untrusted input and returns ``None`` rather than raising.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import json
from typing import Any, Mapping, Optional

# The forwarding headers, in the order the originals check them (lower-case names).
IP_HEADERS = (
    "x-client-ip",
    "x-forwarded-for",
    "cf-connecting-ip",
    "true-client-ip",
    "x-real-ip",
    "x-cluster-client-ip",
    "x-forwarded",
    "forwarded-for",
    "forwarded",
)
_IP_HEADER_SET = frozenset(IP_HEADERS)


def _b64decode_loose(segment: str) -> bytes:
    """Decode standard or URL-safe base64 with or without padding."""
    s = segment.strip().replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    return base64.b64decode(s)


def jwt_payload(token: str) -> Optional[Mapping[str, Any]]:
    """The payload of a JWT, unverified (we only read who the caller claims to be); ``None`` if it is not one."""
    parts = token.strip().split(".")
    if len(parts) < 2:
        return None
    try:
        payload = json.loads(_b64decode_loose(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None


def _field(payload: Mapping[str, Any], path: str) -> Any:
    """``sub`` or a dotted path (``user.id``); a literal key containing dots wins over the path."""
    if path in payload:
        return payload[path]
    lowered = path.lower()
    for key, value in payload.items():  # the originals lower-cased the field name: accept any case
        if isinstance(key, str) and key.lower() == lowered:
            return value
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _as_id(value: Any) -> Optional[str]:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        # a JWT can carry "\ud800": an id UTF-8 cannot hold would sink the event's batch
        text = str(value).encode("utf-8", "replace").decode("utf-8")
        return text or None
    return None


@functools.lru_cache(maxsize=1024)  # the same few tokens come back call after call: decode each once
def user_from_authorization(value: str, field: str = "sub") -> Optional[str]:
    """User id from one authorization header value: ``Bearer <jwt>`` -> the payload's ``field``;
    ``Basic <b64>`` -> the username; a bare JWT -> its ``field``; anything else -> ``None``."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    lowered = scheme.lower()
    if lowered == "basic" and rest:
        try:
            decoded = _b64decode_loose(rest).decode("utf-8", "replace")
        except (ValueError, binascii.Error):
            return None
        username = decoded.split(":", 1)[0]
        return username or None
    token = rest if lowered == "bearer" else value
    payload = jwt_payload(token)
    if payload is None:
        return None
    return _as_id(_field(payload, field))


@functools.lru_cache(maxsize=64)
def _header_names(header_names: str) -> tuple[str, ...]:
    return tuple(name.strip().lower() for name in header_names.split(","))


def user_from_headers(
    headers: Mapping[str, str], header_names: str = "authorization", field: str = "sub"
) -> Optional[str]:
    """Try each of the comma-separated ``header_names`` in order (``headers`` has lower-case names); the first
    header that yields a user id wins."""
    for name in _header_names(header_names):
        value = headers.get(name)
        if value:
            user = user_from_authorization(value, field)
            if user:
                return user
    return None


@functools.lru_cache(maxsize=1024)  # parsing costs ~20 us; clients repeat
def _valid_ip(candidate: str) -> Optional[str]:
    c = candidate.strip().strip('"')
    if not c or c.lower() == "unknown":
        return None
    if c.startswith("["):  # [v6]:port
        end = c.find("]")
        if end > 0:
            c = c[1:end]
    elif c.count(":") == 1:  # v4:port
        c = c.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(c)
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:203.0.113.7 is the IPv4 client 203.0.113.7
    return str(mapped or ip)


def _candidates(name: str, value: str) -> list[str]:
    out = []
    for part in value.split(","):
        if name == "forwarded":  # RFC 7239: for=192.0.2.60;proto=http
            for pair in part.split(";"):
                key, _, val = pair.strip().partition("=")
                if key.lower() == "for":
                    out.append(val)
        else:
            out.append(part)
    return out


def client_ip(headers: Mapping[str, str], peer: Optional[str] = None) -> Optional[str]:
    """The first valid IP (v4 or v6) from the forwarding headers, in order, else the peer address, else None.

    ``headers`` has lower-case names. For lists, the left-most valid address wins (the original client).
    """
    if _IP_HEADER_SET.isdisjoint(headers):  # the usual case, checked in one C loop over the few header names
        return (_valid_ip(peer) or None) if peer else None
    for name in IP_HEADERS:
        value = headers.get(name)
        if not value:
            continue
        for candidate in _candidates(name, value):
            ip = _valid_ip(candidate)
            if ip:
                return ip
    if peer:
        return _valid_ip(peer) or None
    return None
