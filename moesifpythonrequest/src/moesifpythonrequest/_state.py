"""What the patched clients share: the process-wide capture state, streamed-body bookkeeping and body helpers.

The wrappers read :data:`ACTIVE` once per call: ``None`` means capture is off and they pass straight through.
Starting and stopping replace it as a whole (one reference assignment), so a call in flight on another thread
keeps the state it started with.
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from typing import Any, AsyncIterator, Callable, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

from moesif_core import Agent, BodyTap, RawCapture, call_user
from moesif_core.settings import DEFAULT_BASE_URI

logger = logging.getLogger("moesif")

Callback = Optional[Callable[..., Any]]


class Active:
    """The agent events go to and the ``*_OUTGOING`` options, as read once at start."""

    __slots__ = (
        "agent",
        "skip",
        "identify_user",
        "identify_company",
        "get_session_token",
        "get_metadata",
        "log_body",
        "max_body",
    )

    def __init__(
        self,
        agent: Agent,
        *,
        skip: Callback = None,
        identify_user: Callback = None,
        identify_company: Callback = None,
        get_session_token: Callback = None,
        get_metadata: Callback = None,
        log_body: bool = True,
        max_body: int = 1024 * 1024,
    ) -> None:
        self.agent = agent
        self.skip = skip
        self.identify_user = identify_user
        self.identify_company = identify_company
        self.get_session_token = get_session_token
        self.get_metadata = get_metadata
        self.log_body = log_body
        self.max_body = max_body

    def identify(self, raw: RawCapture, req: Any, resp: Any) -> None:
        """Fill the capture's user, company, session token and metadata from the ``*_OUTGOING`` callbacks that are
        set (each called with the client library's own request and response), for every patched client alike."""
        if self.identify_user is not None:
            raw.user_id = call_user(self.identify_user, "IDENTIFY_USER_OUTGOING", req, resp)
        if self.identify_company is not None:
            raw.company_id = call_user(self.identify_company, "IDENTIFY_COMPANY_OUTGOING", req, resp)
        if self.get_session_token is not None:
            raw.session_token = call_user(self.get_session_token, "GET_SESSION_TOKEN_OUTGOING", req, resp)
        if self.get_metadata is not None:
            raw.metadata = call_user(self.get_metadata, "GET_METADATA_OUTGOING", req, resp)


#: The running capture, or ``None`` when it is off.
ACTIVE: Optional[Active] = None


def url_prefix(base_uri: str) -> str:
    """``BASE_URI`` as the start of every URL the SDK calls: scheme and host lower-cased, one trailing slash."""
    parts = urlsplit(base_uri.strip())
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}/"


#: URLs that are the SDK's own (ingestion and config calls): Moesif's API and every ``BASE_URI`` capture was
#: started with. A call whose URL starts with one of these is never captured; neither is one that carries a
#: Moesif SDK header (every client of the core sends ``X-Moesif-Application-Id`` on its own session).
INTERNAL_PREFIXES: Tuple[str, ...] = (url_prefix(DEFAULT_BASE_URI),)
INTERNAL_HEADERS = ("x-moesif-application-id", "x-moesif-sdk")


def add_internal_prefix(base_uri: str) -> None:
    global INTERNAL_PREFIXES
    prefix = url_prefix(base_uri)
    if prefix not in INTERNAL_PREFIXES:
        INTERNAL_PREFIXES = (*INTERNAL_PREFIXES, prefix)


def reset_internal_prefixes() -> None:
    global INTERNAL_PREFIXES
    INTERNAL_PREFIXES = (url_prefix(DEFAULT_BASE_URI),)


# -- bodies ------------------------------------------------------------------------------------------------------


def request_tap(body: Any, limit: int) -> Optional[BodyTap]:
    """A tap holding the first ``limit`` bytes of a request body that was sent whole (bytes or text).

    Streamed uploads (generators, files) are not read: the caller's body is the caller's. ``None`` for no body.
    """
    if not body:
        return None
    tap = BodyTap(limit)
    if isinstance(body, bytes):
        tap.feed(body)  # kept by reference when it fits; sliced to the cap otherwise
    elif isinstance(body, str):
        if len(body) <= limit:
            tap.feed(body.encode("utf-8", "surrogateescape"))
        else:  # encode only what can be kept; the rest counts (at least one byte per character) as cut
            tap.feed(body[:limit].encode("utf-8", "surrogateescape"))
            tap.total += len(body) - limit
    elif isinstance(body, (bytearray, memoryview)):
        n = len(body)
        tap.feed(bytes(body[:limit]))
        tap.total += max(0, n - limit)
    else:
        return None
    return tap


class PendingEvent:
    """An outgoing call whose response body the caller is still reading (``stream=True``).

    The event is queued once: when the body has been read to its end, when the caller closes the response, or
    when the response is garbage-collected, whichever comes first. Until then the tee feeds the bytes the caller
    reads into the tap (at most the cap is kept). Nothing here ever raises.
    """

    __slots__ = ("_item", "tap", "reading", "closed")

    def __init__(self, agent: Agent, raw: RawCapture, tap: BodyTap) -> None:
        #: One ``(agent, raw)`` until the event is queued; ``list.pop`` makes "queue it once" atomic.
        self._item: List[Tuple[Agent, RawCapture]] = [(agent, raw)]
        self.tap = tap
        #: Reads in progress: httpx closes the response from inside the read of its last raw chunk, before the
        #: decoder's tail comes out; such a close leaves the event to the end of that read.
        self.reading = 0
        self.closed = False

    @property
    def open(self) -> bool:
        return bool(self._item)

    def finish(self) -> None:
        try:
            agent, raw = self._item.pop()
        except IndexError:
            return
        raw.response_time = time.time()
        agent.capture(raw)  # never raises, never blocks

    def close(self) -> None:
        """The caller closed the response."""
        self.closed = True
        if not self.reading:
            self.finish()


def tee(chunks: Iterator[bytes], pending: PendingEvent) -> Iterator[bytes]:
    """Yield ``chunks`` unchanged, feeding them to ``pending`` as the caller reads them.

    The event is queued at the end of the body; a reader that stops early leaves it to ``close`` or collection.
    """
    it = iter(chunks)
    while True:
        pending.reading += 1
        try:
            chunk = next(it)
        except StopIteration:
            break
        except BaseException:
            if pending.closed:
                pending.finish()
            raise
        finally:
            pending.reading -= 1
        if pending._item:
            pending.tap.feed(chunk)
        yield chunk
    pending.finish()


async def atee(chunks: AsyncIterator[bytes], pending: PendingEvent) -> AsyncIterator[bytes]:
    """:func:`tee` for async iterators."""
    it = chunks.__aiter__()
    while True:
        pending.reading += 1
        try:
            chunk = await it.__anext__()
        except StopAsyncIteration:
            break
        except BaseException:
            if pending.closed:
                pending.finish()
            raise
        finally:
            pending.reading -= 1
        if pending._item:
            pending.tap.feed(chunk)
        yield chunk
    pending.finish()


#: Streamed responses being read, to the event waiting for their body. Weak: an entry lives as long as its
#: response and adds nothing to it (no attribute, no reference cycle).
STREAMS: weakref.WeakKeyDictionary[Any, PendingEvent] = weakref.WeakKeyDictionary()


def track_stream(response: Any, pending: PendingEvent) -> None:
    STREAMS[response] = pending
    # A response dropped unread and unclosed still gets its event (with what was read) when it is collected.
    weakref.finalize(response, pending.finish)


def stream_of(response: Any) -> Optional[PendingEvent]:
    pending = STREAMS.get(response)
    if pending is None or not pending._item:
        return None
    return pending


def internal_or_unreadable(is_internal: Callable[[Any], bool], request: Any) -> bool:
    """``is_internal(request)``, and ``True`` for anything it cannot read: the original then deals with it as it
    would (shared by the requests and httpx patches)."""
    try:
        return is_internal(request)
    except Exception:  # noqa: BLE001 - not a request we can read: not ours to capture, the original decides
        return True


def make_close(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a response class's ``close`` (requests or httpx): closing a streamed response ends its event."""

    @functools.wraps(original)
    def close(self: Any) -> Any:
        try:
            return original(self)
        finally:
            pending = stream_of(self)
            if pending is not None:
                pending.close()

    return close


def header_pairs(headers: Any) -> List[Tuple[Any, Any]]:
    """A snapshot of a ``requests`` header mapping as ``(name, value)`` pairs, names as given."""
    store = getattr(headers, "_store", None)
    if isinstance(store, dict):  # requests' CaseInsensitiveDict: lower -> (name, value)
        return list(store.values())
    if headers is None:
        return []
    return list(headers.items())
