"""The event model handed to ``MASK_EVENT_MODEL`` and serialised to the wire.

Attribute names follow the originals' ``moesifapi`` models (``event.request.headers``, ``event.response.body``,
``event.user_id``, ``event.metadata``...), so a user's mask function written for them works unchanged. It may
mutate the event or return another one (or a plain dict in the wire shape). :meth:`EventModel.to_dict` gives
exactly the JSON of docs/wire.md: every key present, ``null`` when unset. Constructor arguments keep the originals'
positional order too. The classes have no ``__slots__``, so a mask function may add attributes as it could on
the originals' models; ``to_dictionary()`` is the originals' name for ``to_dict()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Dict, Optional

from .timeutil import format_time


def _time(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value.timestamp()) if value.tzinfo else value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_time(float(value))
    return value


class _Model(ABC):
    @abstractmethod
    def to_dict(self) -> Dict[str, Any]:
        """The wire JSON of this part of the event."""

    def to_dictionary(self) -> Dict[str, Any]:
        """The originals' name for :meth:`to_dict`."""
        return self.to_dict()


class EventRequestModel(_Model):
    """``request`` of an event."""

    def __init__(
        self,
        time: Any = None,
        uri: Optional[str] = None,
        verb: Optional[str] = None,
        headers: Optional[Dict[str, Any]] = None,
        api_version: Optional[str] = None,
        ip_address: Optional[str] = None,
        body: Any = None,
        transfer_encoding: Optional[str] = None,
    ) -> None:
        self.time = time
        self.uri = uri
        self.verb = verb
        self.api_version = api_version
        self.ip_address = ip_address
        self.headers = headers if headers is not None else {}
        self.body = body
        self.transfer_encoding = transfer_encoding

    def to_dict(self) -> Dict[str, Any]:
        return {
            "time": _time(self.time),
            "uri": self.uri,
            "verb": self.verb,
            "api_version": self.api_version,
            "ip_address": self.ip_address,
            "headers": self.headers,
            "body": self.body,
            "transfer_encoding": self.transfer_encoding,
        }


class EventResponseModel(_Model):
    """``response`` of an event."""

    def __init__(
        self,
        time: Any = None,
        status: Optional[int] = None,
        headers: Optional[Dict[str, Any]] = None,
        body: Any = None,
        ip_address: Optional[str] = None,
        transfer_encoding: Optional[str] = None,
    ) -> None:
        self.time = time
        self.status = status
        self.ip_address = ip_address
        self.headers = headers if headers is not None else {}
        self.body = body
        self.transfer_encoding = transfer_encoding

    def to_dict(self) -> Dict[str, Any]:
        return {
            "time": _time(self.time),
            "status": self.status,
            "ip_address": self.ip_address,
            "headers": self.headers,
            "body": self.body,
            "transfer_encoding": self.transfer_encoding,
        }


class EventModel(_Model):
    """One API call."""

    def __init__(
        self,
        request: Optional[EventRequestModel] = None,
        response: Optional[EventResponseModel] = None,
        session_token: Optional[str] = None,
        tags: Optional[str] = None,
        user_id: Optional[str] = None,
        company_id: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        direction: Optional[str] = None,
        weight: Optional[int] = None,
        blocked_by: Optional[str] = None,
        transaction_id: Optional[str] = None,
    ) -> None:
        self.request = request if request is not None else EventRequestModel()
        self.response = response if response is not None else EventResponseModel()
        self.user_id = user_id
        self.company_id = company_id
        self.session_token = session_token
        self.tags = tags
        self.metadata = metadata
        self.direction = direction
        self.weight = weight
        self.blocked_by = blocked_by
        self.transaction_id = transaction_id

    def to_dict(self) -> Dict[str, Any]:
        return {
            "request": self.request.to_dict() if hasattr(self.request, "to_dict") else self.request,
            "response": self.response.to_dict() if hasattr(self.response, "to_dict") else self.response,
            "user_id": self.user_id,
            "company_id": self.company_id,
            "session_token": self.session_token,
            "tags": self.tags,
            "metadata": self.metadata,
            "direction": self.direction,
            "weight": self.weight,
            "blocked_by": self.blocked_by,
            "transaction_id": self.transaction_id,
        }

    def __repr__(self) -> str:
        return f"EventModel({self.request.verb} {self.request.uri} -> {self.response.status})"
