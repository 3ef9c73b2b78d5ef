"""The core's pre-app decision (:mod:`moesif_core.preapp`: early sampling and governance) in ASGI terms.

Nothing here runs while the config samples every call and there are no rules (the default). Otherwise, before the
app is called, this hands the core the facts as the scope holds them and renders its answer:

- Not sampled: the call drops its capture (it still gets its transaction id header).
- With governance rules: ``IDENTIFY_USER`` and ``IDENTIFY_COMPANY`` are called early, with ``response`` None, as the
  original did; only when a rule looks at ``request.body.*``, the request messages are read ahead up to
  ``MAX_BODY_SIZE`` and replayed to the app unchanged.
- A blocked call gets the rule's status, headers (with ``content-length``) and body as ASGI messages without the
  app being called; the headers of non-blocking rules are added to the app's response, replacing same-named ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

from starlette.types import Message, Receive

from moesif_core import json_body, lower_headers

from .objects import callback_request

if TYPE_CHECKING:
    from moesif_core import EarlyDecision

    from .callbacks import UserCallback
    from .middleware import _Call


def _wire(headers: Sequence[Tuple[str, str]]) -> List[Tuple[bytes, bytes]]:
    """Header pairs as ASGI sends them: lower-case latin-1 bytes."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


class ReadAhead:
    """The request messages read before the app runs, handed to it first, then the server's ``receive``."""

    def __init__(self, receive: Receive, messages: List[Message]) -> None:
        self.receive = receive
        self.messages = messages

    async def __call__(self) -> Message:
        if self.messages:
            return self.messages.pop(0)
        return await self.receive()


async def _read_body_ahead(call: _Call, limit: int) -> Any:
    """Read the request body (at most ``limit`` bytes) before the app; the app gets the same messages later.
    Returns the parsed JSON body, or ``None``."""
    messages: List[Message] = []
    size = 0
    complete = False
    while size <= limit:
        message = await call.app_receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            complete = True
            break
    call.app_receive = ReadAhead(call.app_receive, messages)
    if not complete or size > limit:
        return None
    return json_body(b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request"))


async def apply(
    call: _Call,
    early: EarlyDecision,
    identify_user: Optional[UserCallback],
    identify_company: Optional[UserCallback],
) -> Optional[Tuple[Message, Message]]:
    """Sample early and govern; returns the response messages when the call is blocked, ``None`` to call the app."""
    scope = call.scope
    client = scope.get("client")
    peer = client[0] if client else None
    if not early.sample(call.raw.method, scope.get("path") or "/", lower_headers(call.request_headers), peer):
        call.drop_capture()
    call.raw.weight = early.weight
    if not early.governs:
        return None
    body = await _read_body_ahead(call, call.mw.max_body_size) if early.needs_body else None
    user_id = company_id = None
    if identify_user is not None or identify_company is not None:
        request = callback_request(scope, None)
        if identify_user is not None:
            user_id = await identify_user(request, None)
        if identify_company is not None:
            company_id = await identify_company(request, None)
    early.govern(call.raw.uri, user_id, company_id, body)
    if not early.blocked:
        if early.headers:
            call.extra_headers = _wire(early.headers)
        return None
    call.raw.blocked_by = early.blocked_by
    headers = _wire(early.headers_with_length())
    start: Message = {"type": "http.response.start", "status": early.status, "headers": headers}
    end: Message = {"type": "http.response.body", "body": early.body, "more_body": False}
    return start, end
