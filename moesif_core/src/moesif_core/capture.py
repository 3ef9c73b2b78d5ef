"""The raw parts of one API call, as the request path copies them.

An adapter fills a :class:`RawCapture` with what it must copy while the framework's objects are live: the method,
URL, headers as given, the body taps, the peer address and the results of the user's callbacks. Everything else
(header naming, IP and user extraction, body parsing, masking, serialising) is done later by the worker in
:mod:`moesif_core.build`, off the request path.
"""

from __future__ import annotations

from collections.abc import ItemsView
from itertools import chain
from typing import Any, Iterable, Mapping, Optional, Tuple, Union

from .body import BodyTap

#: ``(name, value)`` pairs, or a mapping of them (a WSGI environ copy)
HeaderPairs = Union[Iterable[Tuple[str, str]], Mapping[str, Any]]

#: Fixed per-event allowance, in bytes, for headers and bookkeeping in the queue's byte bound.
EVENT_OVERHEAD_BYTES = 1024

#: A capture as the queue holds it (:meth:`RawCapture.freeze`): a plain tuple, fields in this order. Headers are
#: one flat tuple ``(name, value, name, value, ...)``; a body is its kept bytes (``None`` for none) and its total
#: size in bytes.
Frozen = Tuple[Any, ...]
FROZEN_FIELDS = (
    "direction",
    "request_time",
    "response_time",
    "method",
    "uri",
    "request_headers",
    "wsgi_headers",
    "request_body",
    "request_body_total",
    "response_status",
    "response_headers",
    "response_body",
    "response_body_total",
    "peer_ip",
    "user_id",
    "company_id",
    "session_token",
    "metadata",
    "api_version",
    "transaction_id",
    "blocked_by",
    "weight",
    "log_body",
    "head",
    "size",
)
#: Index of the ``weight`` and ``size`` fields in a :data:`Frozen` capture.
FROZEN_WEIGHT = FROZEN_FIELDS.index("weight")
FROZEN_SIZE = FROZEN_FIELDS.index("size")

_WSGI_UNPREFIXED = ("CONTENT_TYPE", "CONTENT_LENGTH")


def _flat_headers(headers: HeaderPairs, wsgi: bool) -> Tuple[Any, ...]:
    """Header pairs as one flat tuple (no tuple per header: less to hold, less for the GC to look at); of a
    mapping (a WSGI environ copy) only the header items are kept."""
    if isinstance(headers, dict):
        items: Any = headers.items()
        if wsgi:
            items = [item for item in items if item[0][:5] == "HTTP_" or item[0] in _WSGI_UNPREFIXED]
        return tuple(chain.from_iterable(items))
    return tuple(chain.from_iterable(headers))  # a list, a mapping's items, even a generator: read once, here


def _flat(pairs: Any) -> Tuple[Any, ...]:
    """``[(a, b), (c, d)]`` -> ``(a, b, c, d)``. A few tuples are joined with ``sum`` (2-3x faster than a chain at
    the sizes headers have); many, or pairs given as lists, through a chain (``sum`` is quadratic)."""
    if len(pairs) <= 16:
        try:
            return sum(pairs, ())
        except TypeError:  # a pair given as a list
            pass
    return tuple(chain.from_iterable(pairs))


def _kept(tap: Optional[BodyTap]) -> Any:
    """The kept bytes without a copy: the one chunk, or the growing buffer (a bytearray; the tap is done with it)."""
    if tap is None:
        return None
    buffer = tap._buffer
    return buffer if buffer is not None else (tap.chunks[0] if tap.chunks else b"")


class RawCapture:
    """One call's raw parts. Attributes left ``None`` become ``null`` (or are derived) in the event."""

    __slots__ = (
        "direction",
        "request_time",
        "response_time",
        "method",
        "uri",
        "request_headers",
        "wsgi_headers",
        "request_body",
        "response_status",
        "response_headers",
        "response_body",
        "peer_ip",
        "user_id",
        "company_id",
        "session_token",
        "metadata",
        "api_version",
        "transaction_id",
        "blocked_by",
        "weight",
        "log_body",
        "head",
    )

    def __init__(
        self,
        *,
        method: str,
        uri: str,
        request_time: float,
        direction: str = "Incoming",
        request_headers: HeaderPairs = (),
        wsgi_headers: bool = False,
        request_body: Optional[BodyTap] = None,
        response_time: Optional[float] = None,
        response_status: Optional[int] = None,
        response_headers: HeaderPairs = (),
        response_body: Optional[BodyTap] = None,
        peer_ip: Optional[str] = None,
        user_id: Any = None,
        company_id: Any = None,
        session_token: Any = None,
        metadata: Any = None,
        api_version: Any = None,
        transaction_id: Optional[str] = None,
        blocked_by: Optional[str] = None,
        weight: Optional[int] = None,
        log_body: bool = True,
    ) -> None:
        self.direction = direction
        self.request_time = request_time
        self.response_time = response_time
        self.method = method
        self.uri = uri
        #: ``(name, value)`` pairs as the framework gives them; with ``wsgi_headers`` they are environ items
        #: (``HTTP_X_CASE``, ``CONTENT_TYPE``) and the worker turns them into header names.
        self.request_headers = request_headers
        self.wsgi_headers = wsgi_headers
        self.request_body = request_body
        self.response_status = response_status
        self.response_headers = response_headers
        self.response_body = response_body
        self.peer_ip = peer_ip
        self.user_id = user_id
        self.company_id = company_id
        self.session_token = session_token
        self.metadata = metadata
        self.api_version = api_version
        self.transaction_id = transaction_id
        self.blocked_by = blocked_by
        self.weight = weight
        self.log_body = log_body
        #: A HEAD request: the response has no body whatever the framework wrote.
        self.head = method == "HEAD"

    def freeze(self) -> Frozen:
        """This capture as the queue keeps it: one tuple of plain values (str, bytes, numbers, ``None`` and tuples
        of them; ``metadata`` as the callback gave it). Why: the cyclic GC untracks such a tuple the first time it
        looks at it, so captures waiting in the queue (20,000 of them while the collector is away) cost a full
        collection nothing, where a ``RawCapture``, a list or a ``BodyTap`` each is walked by every full collection
        and makes every thread wait. Also smaller. The last field is the size estimate of :meth:`size_estimate`."""
        headers = self.request_headers
        request_headers = (
            _flat(headers)
            if type(headers) is list or type(headers) is tuple  # what every adapter gives
            else _flat_headers(headers, self.wsgi_headers)
        )
        size = EVENT_OVERHEAD_BYTES + len(self.uri)
        values = request_headers[1::2]
        try:
            size += sum(map(len, values))
        except TypeError:  # a value that is not text or bytes (a number, say) is not counted
            for value in values:
                if isinstance(value, (str, bytes)):
                    size += len(value)
        request_tap, response_tap = self.request_body, self.response_body
        response_headers = self.response_headers
        request_body, response_body = _kept(request_tap), _kept(response_tap)
        if request_body is not None:
            size += len(request_body)
        if response_body is not None:
            size += len(response_body)
        return (
            self.direction,
            self.request_time,
            self.response_time,
            self.method,
            self.uri,
            request_headers,
            self.wsgi_headers,
            request_body,
            0 if request_tap is None else request_tap.total,
            self.response_status,
            _flat(response_headers)
            if type(response_headers) is list or type(response_headers) is tuple
            else _flat_headers(response_headers, False),
            response_body,
            0 if response_tap is None else response_tap.total,
            self.peer_ip,
            self.user_id,
            self.company_id,
            self.session_token,
            self.metadata,
            self.api_version,
            self.transaction_id,
            self.blocked_by,
            self.weight,
            self.log_body,
            self.head,
            size,
        )

    def size_estimate(self) -> int:
        """Bytes this capture holds, for the queue's byte bound: the kept bodies, the URL and request header
        values, plus a fixed overhead."""
        size = EVENT_OVERHEAD_BYTES + len(self.uri)
        headers = self.request_headers
        if isinstance(headers, dict):  # a WSGI environ copy: count its text values
            for value in headers.values():
                if isinstance(value, str):
                    size += len(value)
        elif isinstance(headers, (list, tuple, ItemsView)):  # never a generator: it would be consumed
            for pair in headers:
                value = pair[1]
                if isinstance(value, (str, bytes)):
                    size += len(value)
        if self.request_body is not None:
            size += self.request_body.kept
        if self.response_body is not None:
            size += self.response_body.kept
        return size
