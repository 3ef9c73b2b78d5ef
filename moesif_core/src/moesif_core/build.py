"""Turn a :class:`~moesif_core.capture.RawCapture` into the wire event. Runs in the worker, never on the request
path: this is where the costly parts (header naming, JWT decoding, JSON parsing, base64, masking, the user's
``MASK_EVENT_MODEL``) happen."""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from .body import TRUNCATED_METADATA_KEY, BodyTap, encode_body
from .capture import HeaderPairs, RawCapture
from .event import EventModel, EventRequestModel, EventResponseModel
from .identity import client_ip, user_from_headers
from .masking import mask_body, mask_headers, normalise
from .settings import Settings
from .timeutil import format_time

logger = logging.getLogger("moesif")

TRANSACTION_ID_HEADER = "X-Moesif-Transaction-Id"

_WSGI_UNPREFIXED = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}


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


def headers_dict(pairs: HeaderPairs, wsgi: bool = False) -> Dict[str, str]:
    """Flat ``{name: value}``; a repeated header's values are joined with ``", "`` as HTTP allows."""
    out: Dict[str, str] = {}
    for key, value in pairs:
        name: Optional[str] = _text(key)
        if wsgi:
            name = wsgi_header_name(key)
            if name is None:
                continue
        assert name is not None
        text = _text(value)
        if name in out:
            out[name] = out[name] + ", " + text
        else:
            out[name] = text
    return out


def _id(value: Any, what: str) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    logger.warning("moesif: %s returned %s, expected a string; the event is sent without it", what,
                   type(value).__name__)
    return None


class EventBuilder:
    """Builds wire dicts for one settings object (mask sets are prepared once)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.request_header_masks = normalise(settings.request_header_masks)
        self.response_header_masks = normalise(settings.response_header_masks)
        self.request_body_masks = normalise(settings.request_body_masks)
        self.response_body_masks = normalise(settings.response_body_masks)

    def event_model(self, raw: RawCapture) -> EventModel:
        s = self.settings
        req_headers = headers_dict(raw.request_headers, raw.wsgi_headers)
        if raw.transaction_id and TRANSACTION_ID_HEADER not in req_headers:
            req_headers[TRANSACTION_ID_HEADER] = raw.transaction_id
        lower = {k.lower(): v for k, v in req_headers.items()}
        resp_headers = headers_dict(raw.response_headers)

        user_id = _id(raw.user_id, "IDENTIFY_USER")
        if user_id is None and raw.direction == "Incoming":
            user_id = user_from_headers(lower, s.authorization_header_name, s.authorization_user_id_field)

        metadata = raw.metadata
        if metadata is not None and not isinstance(metadata, dict):
            logger.warning("moesif: GET_METADATA returned %s, expected a dict; ignored", type(metadata).__name__)
            metadata = None

        req_body: Any = None
        req_enc: Optional[str] = None
        resp_body: Any = None
        resp_enc: Optional[str] = None
        truncated: Dict[str, int] = {}
        if raw.log_body:
            req_body, req_enc = self._body(raw.request_body, "request", truncated)
            if not raw.head:
                resp_body, resp_enc = self._body(raw.response_body, "response", truncated)
        if truncated:
            metadata = dict(metadata or {})
            metadata[TRUNCATED_METADATA_KEY] = truncated

        if req_enc == "json":
            req_body = mask_body(req_body, self.request_body_masks)
        if resp_enc == "json":
            resp_body = mask_body(resp_body, self.response_body_masks)
        mask_headers(req_headers, self.request_header_masks)
        mask_headers(resp_headers, self.response_header_masks)

        api_version = _id(raw.api_version, "GET_API_VERSION") or s.api_version
        request = EventRequestModel(
            time=format_time(raw.request_time),
            uri=raw.uri,
            verb=raw.method,
            api_version=api_version,
            ip_address=client_ip(lower, raw.peer_ip),
            headers=req_headers,
            body=req_body,
            transfer_encoding=req_enc,
        )
        response = EventResponseModel(
            time=format_time(raw.response_time if raw.response_time is not None else raw.request_time),
            status=raw.response_status,
            headers=resp_headers,
            body=resp_body,
            transfer_encoding=resp_enc,
        )
        return EventModel(
            request=request,
            response=response,
            user_id=user_id,
            company_id=_id(raw.company_id, "IDENTIFY_COMPANY"),
            session_token=_id(raw.session_token, "GET_SESSION_TOKEN"),
            metadata=metadata,
            direction=raw.direction,
            weight=raw.weight if raw.weight is not None else 1,
            blocked_by=raw.blocked_by,
            transaction_id=raw.transaction_id,
        )

    @staticmethod
    def _body(tap: Optional[BodyTap], side: str, truncated: Dict[str, int]) -> tuple[Any, Optional[str]]:
        if tap is None or not tap.total:
            return None, None
        if tap.truncated:
            truncated[side] = tap.total
        return encode_body(tap.data(), tap.truncated)

    def build(self, raw: RawCapture) -> Optional[Dict[str, Any]]:
        """The wire dict, after ``MASK_EVENT_MODEL``; ``None`` if the event cannot be built (logged)."""
        try:
            event = self.event_model(raw)
        except Exception:
            logger.warning("moesif: could not build an event; it is dropped", exc_info=True)
            return None
        mask = self.settings.mask_event_model
        if mask is not None:
            try:
                masked = mask(event)
            except Exception:
                # The user asked for data to be removed and we cannot tell how much was: sending the event as is
                # could leak what they meant to hide, so it is dropped (and logged).
                logger.warning("moesif: MASK_EVENT_MODEL raised; the event is dropped rather than sent unmasked",
                               exc_info=True)
                return None
            if isinstance(masked, EventModel):
                event = masked
            elif isinstance(masked, dict):
                return masked
            elif masked is not None:
                logger.warning("moesif: MASK_EVENT_MODEL returned %s, expected an EventModel; using the event as "
                               "masked in place", type(masked).__name__)
        try:
            return event.to_dict()
        except Exception:
            logger.warning("moesif: MASK_EVENT_MODEL left an event that cannot be serialised; dropped",
                           exc_info=True)
            return None
