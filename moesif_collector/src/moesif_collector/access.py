"""Who may use the page, ``/api`` and ``/_admin``: a check of ``Host`` (DNS rebinding) and ``Origin`` (other pages).

The collector has no authentication. On loopback that is safe only if a web page the user visits cannot talk
to it as if it were same-origin:

- **DNS rebinding**: ``evil.example`` resolves to 127.0.0.1, and the browser then treats the collector as part of
  ``evil.example``: it sends ``Host: evil.example:5080``. So the page, ``/api`` and ``/_admin`` answer only to a
  ``Host`` naming the bound address, a loopback name (``localhost``, ``127.x.x.x``, ``[::1]``), or a name given
  with ``--allow-host``. A wildcard bind (``0.0.0.0``, ``::``) also accepts any IP literal: rebinding needs a name.
- **Cross-origin writes**: any page can send a "simple" ``POST`` (``text/plain``, ``no-cors``) to loopback. So
  ``/_admin`` writes need ``Content-Type: application/json`` (which a browser sends only after a preflight, which
  is refused), and a browser's ``Origin``, when present, must be the collector's own.

- **An optional token** (``serve --token``, for a collector others can reach): the page, ``/api`` and ``/_admin``
  then need ``Authorization: Bearer TOKEN`` or the cookie that opening ``/?token=TOKEN`` once sets (``HttpOnly``,
  ``SameSite=Strict``); anything else is a 401.

``/v1`` is exempt: it is the ingestion API, open to any origin by design (as the real one is, with
``Access-Control-Allow-Origin: *``), and SDKs reach it under whatever name ``BASE_URI`` uses.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from http.cookies import CookieError, SimpleCookie

TOKEN_COOKIE = "moesif_collector_token"

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a name) is this machine only: ``localhost``, 127.0.0.0/8, ``::1``."""
    name = host.strip("[]").lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    address = _ip(name)
    return address is not None and address.is_loopback


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header, without the port, lower-cased: ``[::1]:80`` -> ``::1``."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return name.rstrip(".")


class HostPolicy:
    """The ``Host`` names the page, ``/api`` and ``/_admin`` answer to (see the module docstring)."""

    def __init__(self, bind_host: str, allowed: Iterable[str] = ()) -> None:
        """``bind_host`` is the address the server listens on; ``allowed`` more names (``*``: any)."""
        self.bind = bind_host.strip("[]").lower()
        self.allowed = frozenset(name.strip("[]").lower().rstrip(".") for name in allowed)
        self.wildcard = self.bind in WILDCARD_BINDS

    @property
    def loopback_only(self) -> bool:
        """Whether the server is reachable from this machine only."""
        return not self.wildcard and is_loopback(self.bind)

    def allows(self, host_header: str | None) -> bool:
        """Whether a request with this ``Host`` may be answered (no header: not a browser, allowed)."""
        if host_header is None:
            return True
        name = host_name(host_header)
        if "*" in self.allowed or name in self.allowed or name == self.bind or is_loopback(name):
            return True
        return self.wildcard and _ip(name) is not None

    def refusal(self, host_header: str | None) -> str:
        """Why a ``Host`` is refused, and how to allow it."""
        name = host_name(host_header or "")
        return (
            f"Host {name[:100]!r} is not this collector's address (a DNS-rebinding page looks like this);"
            f" use http://127.0.0.1 or http://localhost, or start the collector with --allow-host {name[:100]}"
        )


def same_origin(origin: str | None, host_header: str | None) -> bool:
    """Whether a browser's ``Origin`` is the collector's own (``http://`` + its ``Host``); absent: not a browser."""
    if origin is None:
        return True
    return host_header is not None and origin.strip().lower() == f"http://{host_header.strip().lower()}"


def has_token(token: str, headers: Mapping[str, str]) -> bool:
    """Whether a request carries ``token``: ``Authorization: Bearer TOKEN`` or the cookie (``headers``: lower-case)."""
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer " and _same(authorization[7:].strip(), token):
        return True
    try:
        cookie = SimpleCookie(headers.get("cookie", ""))
    except CookieError:
        return False
    morsel = cookie.get(TOKEN_COOKIE)
    return morsel is not None and _same(morsel.value, token)


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def token_cookie(token: str) -> str:
    """The ``Set-Cookie`` value that lets a browser in once it opened ``/?token=TOKEN``."""
    cookie: SimpleCookie = SimpleCookie()
    cookie[TOKEN_COOKIE] = token  # quoted as needed
    morsel = cookie[TOKEN_COOKIE]
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Strict"
    return morsel.OutputString()
