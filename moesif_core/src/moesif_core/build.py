"""Turn a :class:`~moesif_core.capture.RawCapture` into the wire event. Runs in the worker, never on the request
path: this is where the costly parts (header naming, JWT decoding, JSON parsing, base64, masking, the user's
``MASK_EVENT_MODEL``) happen."""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, FrozenSet, Iterable, Mapping, Optional, Tuple, Union

from .body import TRUNCATED_METADATA_KEY, encode_body, json_as_written
from .capture import Frozen, HeaderPairs, RawCapture
from .event import EventModel, EventRequestModel, EventResponseModel
from .identity import client_ip, user_from_headers
from .ids import new_transaction_id
from .jsoncodec import Embedded, embed
from .masking import mask_body, mask_headers, normalise
from .settings import Settings
from .timeutil import format_time

logger = logging.getLogger("moesif")

TRANSACTION_ID_HEADER = "X-Moesif-Transaction-Id"
_TID_LOWER = TRANSACTION_ID_HEADER.lower()
#: ``metadata`` key for bodies left out: ``{"request": "<why>"}``.
OMITTED_METADATA_KEY = "moesif_body_omitted"
UNMASKABLE = "body masks are set and this body is not JSON, so it could not be masked"
#: ``metadata`` key set when ``MASK_EVENT_MODEL`` raised and the event was sent without its bodies.
MASK_FAILED_METADATA_KEY = "moesif_mask_failed"

_WSGI_UNPREFIXED = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}
#: JSON bodies from this size on are embedded serialised (``embed_bodies``); a smaller one is a few objects, fewer
#: than the serialising would cost.
EMBED_MIN_BYTES = 256


def _text(value: Any) -> str:
    """A header value as text. WSGI gives latin-1-decoded ``str``; recover UTF-8 where the bytes were UTF-8."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    text = str(value)
    if not text.isascii():
        try:
            return text.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return text
    return text


_WSGI_NAME_CACHE: Dict[str, Optional[str]] = {}


def wsgi_header_name(key: str) -> Optional[str]:
    """``HTTP_X_CASE`` -> ``X-Case``; ``CONTENT_TYPE`` -> ``Content-Type``; other environ keys -> ``None``."""
    name = _WSGI_NAME_CACHE.get(key)
    if name is not None:
        return name
    if key.startswith("HTTP_"):
        name = "-".join(part.capitalize() for part in key[5:].split("_"))
    else:
        name = _WSGI_UNPREFIXED.get(key)
    if name is not None and len(_WSGI_NAME_CACHE) < 4096:  # bounded: header names are few, attackers' are many
        _WSGI_NAME_CACHE[key] = name
    return name


#: What :func:`headers_dict` iterates as pairs without asking whether it is a mapping (a costly ABC check).
_PAIR_SEQUENCES = (tuple, list, zip)


def headers_dict(pairs: HeaderPairs, wsgi: bool = False) -> Dict[str, str]:
    """Flat ``{name: value}``; a repeated header's values are joined with ``", "`` as HTTP allows."""
    out: Dict[str, str] = {}
    items: Iterable[Tuple[Any, Any]]
    if type(pairs) not in _PAIR_SEQUENCES and isinstance(pairs, Mapping):  # a WSGI environ copy, say
        items = pairs.items()
    else:
        items = pairs  # type: ignore[assignment]
    names = _WSGI_NAME_CACHE
    for key, value in items:
        if wsgi:
            name = names.get(key) or wsgi_header_name(key)
            if name is None:
                continue
        else:
            name = key if type(key) is str and key.isascii() else _text(key)
        # plain ASCII text (nearly every value) is taken as it is; anything else goes through _text
        text = value if type(value) is str and value.isascii() else _text(value)
        if name in out:
            out[name] = out[name] + ", " + text
        else:
            out[name] = text
    return out


def _encode(data: Any, cut: bool, whole: bool = False) -> Tuple[Any, Optional[str]]:
    """A frozen body's kept bytes (bytes, or the tap's bytearray) in their wire form. ``whole``: a JSON body may
    go as written (:func:`~moesif_core.body.json_as_written`; a batch's body, unmasked, from
    :data:`EMBED_MIN_BYTES` on)."""
    data = data if type(data) is bytes else bytes(data)
    if whole and not cut:
        fragment = json_as_written(data)
        if fragment is not None:
            return fragment, "json"
    return encode_body(data, cut)


def _finish_body(body: Any, encoding: str, masks: FrozenSet[str], embed_bodies: bool) -> Tuple[Any, Optional[str]]:
    """A body in its wire form, masked; ``(None, None)`` when masks are set and it is not JSON we can mask (a form,
    a truncated document): sending it would send what the user asked to hide, so it is left out (the caller says
    why in the event)."""
    if encoding == "json":
        if type(body) is Embedded:  # taken as written (no masks)
            return body, encoding
        if masks:
            body = mask_body(body, masks)
        return (embed(body) if embed_bodies else body), encoding
    if masks:
        return None, None
    return body, encoding


def _id(value: Any, what: str) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    logger.warning(
        "moesif: %s returned %s, expected a string; the event is sent without it", what, type(value).__name__
    )
    return None


class EventBuilder:
    """Builds wire dicts for one settings object (mask sets are prepared once)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.request_header_masks = normalise(settings.request_header_masks)
        self.response_header_masks = normalise(settings.response_header_masks)
        self.request_body_masks = normalise(settings.request_body_masks)
        self.response_body_masks = normalise(settings.response_body_masks)
        self._last_mask_warning = float("-inf")
        self._last_build_warning = float("-inf")
        self._auth_header_names = settings.authorization_header_name
        self._auth_user_id_field = settings.authorization_user_id_field
        self._api_version = settings.api_version

    def wire(self, raw: Union[RawCapture, Frozen], embed_bodies: bool = False) -> Dict[str, Any]:
        """The wire dict of one capture (a :class:`RawCapture` or its frozen form), built as plain dicts: what is
        sent when no ``MASK_EVENT_MODEL`` is set, and what :meth:`event_model` wraps for one that is.

        ``embed_bodies``: JSON bodies come serialised (:func:`~moesif_core.jsoncodec.embed`), for a batch to copy
        in as they are (the same bytes, without a parsed tree held until the batch is sent)."""
        (
            direction,
            request_time,
            response_time,
            method,
            uri,
            request_headers,
            wsgi_headers,
            request_body,
            request_body_total,
            status,
            response_headers,
            response_body,
            response_body_total,
            peer_ip,
            raw_user_id,
            company_id,
            session_token,
            metadata,
            api_version,
            tid,
            blocked_by,
            weight,
            log_body,
            head,
            _size,
        ) = raw.freeze() if isinstance(raw, RawCapture) else raw
        flat = iter(request_headers)
        req_headers = headers_dict(zip(flat, flat), wsgi_headers)
        # lower-case names for the lookups below; for a name given in two cases the later one wins
        lower = dict(zip(map(str.lower, req_headers), req_headers.values()))
        if tid:
            sent = lower.get(_TID_LOWER)
            if sent != tid:
                if sent is not None:  # the caller's id was not reused: the event shows the one the call got
                    for name in [n for n in req_headers if n.lower() == _TID_LOWER]:
                        del req_headers[name]
                req_headers[TRANSACTION_ID_HEADER] = tid
        flat = iter(response_headers)
        resp_headers = headers_dict(zip(flat, flat))

        user_id = None if raw_user_id is None else _id(raw_user_id, "IDENTIFY_USER")
        if user_id is None and direction == "Incoming":
            user_id = user_from_headers(lower, self._auth_header_names, self._auth_user_id_field)

        if metadata is not None and type(metadata) is not dict and not isinstance(metadata, dict):
            logger.warning("moesif: GET_METADATA returned %s, expected a dict; ignored", type(metadata).__name__)
            metadata = None

        req_body: Any = None
        req_enc: Optional[str] = None
        resp_body: Any = None
        resp_enc: Optional[str] = None
        truncated: Optional[Dict[str, int]] = None
        if log_body:
            if request_body is not None and request_body_total:
                if request_body_total > len(request_body):
                    truncated = {"request": request_body_total}
                req_body, req_enc = _encode(
                    request_body,
                    truncated is not None,
                    embed_bodies and not self.request_body_masks and len(request_body) >= EMBED_MIN_BYTES,
                )
            if not head and response_body is not None and response_body_total:
                cut = response_body_total > len(response_body)
                if cut:
                    truncated = truncated or {}
                    truncated["response"] = response_body_total
                resp_body, resp_enc = _encode(
                    response_body,
                    cut,
                    embed_bodies and not self.response_body_masks and len(response_body) >= EMBED_MIN_BYTES,
                )
        omitted: Optional[Dict[str, str]] = None
        if req_enc is not None:
            req_body, req_enc = _finish_body(
                req_body, req_enc, self.request_body_masks, embed_bodies and len(request_body) >= EMBED_MIN_BYTES
            )
            if req_enc is None:
                omitted = {"request": UNMASKABLE}
        if resp_enc is not None:
            resp_body, resp_enc = _finish_body(
                resp_body, resp_enc, self.response_body_masks, embed_bodies and len(response_body) >= EMBED_MIN_BYTES
            )
            if resp_enc is None:
                omitted = omitted or {}
                omitted["response"] = UNMASKABLE
        if truncated or omitted:
            metadata = dict(metadata or {})
            if truncated:
                metadata[TRUNCATED_METADATA_KEY] = truncated
            if omitted:
                metadata[OMITTED_METADATA_KEY] = omitted
        if self.request_header_masks:
            mask_headers(req_headers, self.request_header_masks)
        if self.response_header_masks:
            mask_headers(resp_headers, self.response_header_masks)

        return {
            "request": {
                "time": format_time(request_time),
                "uri": uri,
                "verb": method,
                "api_version": (
                    api_version
                    if type(api_version) is str and api_version
                    else (None if api_version is None else _id(api_version, "GET_API_VERSION")) or self._api_version
                ),
                # an outgoing call's headers are the app's own: a forwarded X-Forwarded-For says nothing of the
                # caller
                "ip_address": client_ip(lower, peer_ip) if direction == "Incoming" else peer_ip,
                "headers": req_headers,
                "body": req_body,
                "transfer_encoding": req_enc,
            },
            "response": {
                "time": format_time(response_time if response_time is not None else request_time),
                "status": status,
                "ip_address": None,
                "headers": resp_headers,
                "body": resp_body,
                "transfer_encoding": resp_enc,
            },
            "user_id": user_id,
            "company_id": None if company_id is None else _id(company_id, "IDENTIFY_COMPANY"),
            "session_token": None if session_token is None else _id(session_token, "GET_SESSION_TOKEN"),
            "tags": None,
            "metadata": metadata,
            "direction": direction,
            "weight": weight if weight is not None else 1,
            "blocked_by": blocked_by,
            "transaction_id": tid or new_transaction_id(),
        }

    def event_model(self, raw: Union[RawCapture, Frozen]) -> EventModel:
        """The event as the originals' model objects, for ``MASK_EVENT_MODEL``: the same fields as :meth:`wire`
        (``to_dict()`` gives back the same JSON)."""
        event = self.wire(raw)
        req, resp = event["request"], event["response"]
        return EventModel(
            request=EventRequestModel(
                time=req["time"],
                uri=req["uri"],
                verb=req["verb"],
                headers=req["headers"],
                api_version=req["api_version"],
                ip_address=req["ip_address"],
                body=req["body"],
                transfer_encoding=req["transfer_encoding"],
            ),
            response=EventResponseModel(
                time=resp["time"],
                status=resp["status"],
                headers=resp["headers"],
                body=resp["body"],
                transfer_encoding=resp["transfer_encoding"],
            ),
            user_id=event["user_id"],
            company_id=event["company_id"],
            session_token=event["session_token"],
            metadata=event["metadata"],
            direction=event["direction"],
            weight=event["weight"],
            blocked_by=event["blocked_by"],
            transaction_id=event["transaction_id"],
        )

    def _mask_failed(self) -> None:
        now = time.monotonic()
        if now - self._last_mask_warning >= 60:
            self._last_mask_warning = now
            logger.warning(
                "moesif: MASK_EVENT_MODEL raised; such events are sent without bodies (logged at most once a minute)",
                exc_info=True,
            )

    def build(self, raw: Union[RawCapture, Frozen], embed_bodies: bool = False) -> Optional[Dict[str, Any]]:
        """The wire dict, after ``MASK_EVENT_MODEL``; ``None`` if the event cannot be built (logged). Without a
        ``MASK_EVENT_MODEL`` the event is built as plain dicts and never as model objects, and ``embed_bodies``
        (the worker's batches) has its JSON bodies serialised at once (see :meth:`wire`)."""
        mask = self.settings.mask_event_model
        try:
            if mask is None:
                return self.wire(raw, embed_bodies)
            event = self.event_model(raw)
        except Exception:
            now = time.monotonic()
            if now - self._last_build_warning >= 60:  # one bad adapter input must not flood the app's logs
                self._last_build_warning = now
                logger.warning(
                    "moesif: could not build an event; it is dropped (logged at most once a minute)", exc_info=True
                )
            return None
        if mask is not None:
            # The originals never handed MASK_EVENT_MODEL a None body, and their READMEs' example
            # (``if 'password' in event_model.response.body:``) relies on that: the mask sees "" for an absent
            # body, which is null again on the wire.
            for part in (event.request, event.response):
                if part.body is None:
                    part.body = ""
            try:
                masked = mask(event)
            except Exception:  # noqa: BLE001 - logged (rate-limited, with traceback) by _mask_failed
                # The user asked for data to be removed and we cannot tell how much was. Sending the event as is
                # could leak what they meant to hide, dropping it would lose the call (the originals' README mask
                # raises on every body-less response), so it goes without bodies and says so.
                self._mask_failed()
                event = self.event_model(raw)
                for side in (event.request, event.response):
                    side.body, side.transfer_encoding = None, None
                event.metadata = {**(event.metadata or {}), MASK_FAILED_METADATA_KEY: True}
                masked = None
            if isinstance(masked, EventModel):
                event = masked
            elif isinstance(masked, dict):
                return masked
            elif masked is not None:
                logger.warning(
                    "moesif: MASK_EVENT_MODEL returned %s, expected an EventModel; using the event as masked in place",
                    type(masked).__name__,
                )
        for part in (event.request, event.response):
            if getattr(part, "body", None) == "" and getattr(part, "transfer_encoding", None) is None:
                part.body = None
        try:
            return event.to_dict()
        except Exception:
            logger.warning("moesif: MASK_EVENT_MODEL left an event that cannot be serialised; dropped", exc_info=True)
            return None
