"""What the server's config asks of a request before the app runs: early sampling and governance rules.

Nothing here runs while the config samples every call and there are no rules (the default): the middleware checks
that with one tuple read and one identity check per request. Otherwise, before the app is called:

- Sampling: when the config's rate for this call can be decided from the verb, path and IP alone, it is decided
  now (a call that is not sampled costs no capture work, though it still gets its transaction id header); when it
  needs the user, company or status, the core's worker decides it later.
- Governance: the rules are evaluated on the verb, URL, IP, headers, the user and company (``IDENTIFY_USER`` and
  ``IDENTIFY_COMPANY`` are called early for this, with ``response`` None, as the original did; the user falls back
  to the authorization header) and, only when a rule looks at ``request.body.*``, the JSON body: the request
  messages are read ahead up to ``MAX_BODY_SIZE`` and replayed to the app unchanged. A blocked call gets the rule's
  status, headers (``content-type: application/json`` unless the rule sets one) and body without the app being
  called; the headers of non-blocking rules are added to the app's response, replacing same-named ones.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from starlette.types import Message, Receive

from moesif_core.governance import Decision, RequestFacts, rules_need_body
from moesif_core.identity import client_ip, user_from_headers

from .objects import callback_request

if TYPE_CHECKING:
    from moesif_core.appconfig import AppConfig, Rule

    from .middleware import MoesifMiddleware, _Call


logger = logging.getLogger("moesif")


def lower_headers(pairs: Sequence[Tuple[bytes, bytes]]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for key, value in pairs:
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        out[name] = out[name] + ", " + text if name in out else text
    return out


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
    data = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            return json.loads(data)
        except ValueError:
            return None
    return None


async def apply(mw: MoesifMiddleware, call: _Call, config: AppConfig, rules: Sequence[Rule]) -> Optional[Decision]:
    """Sample early and govern; returns the decision when the call is blocked, ``None`` to call the app."""
    scope = call.scope
    headers = lower_headers(call.request_headers)
    client = scope.get("client")
    ip = client_ip(headers, client[0] if client else None)
    path = scope.get("path") or "/"
    if not config.samples_everything:
        weight = mw.agent.sample_early(call.method, path, ip)
        if weight is None:
            call.drop_capture()
        elif weight > 0:
            call.weight = weight
    if not rules:
        return None
    body = None
    if rules_need_body(rules):
        body = await _read_body_ahead(call, mw._max_body)
    user_id = company_id = None
    if mw._identify_user is not None or mw._identify_company is not None:
        request = callback_request(scope, None)
        if mw._identify_user is not None:
            user_id = await mw._identify_user(request, None)
        if mw._identify_company is not None:
            company_id = await mw._identify_company(request, None)
    if not user_id:
        s = mw.moesif_settings
        user_id = user_from_headers(headers, s.authorization_header_name, s.authorization_user_id_field)
    facts = RequestFacts(
        verb=call.method,
        uri=call.uri,
        path=path,
        ip=ip,
        headers=headers,
        user_id=str(user_id) if user_id is not None else None,
        company_id=str(company_id) if company_id is not None else None,
        body=body,
    )
    decision = mw.agent.governor.evaluate(facts)
    if decision is None:
        return None
    if not decision.blocked:
        call.extra_headers = [
            (k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in decision.headers.items()
        ]
        return None
    return decision


def blocked_messages(decision: Decision) -> Tuple[Message, Message]:
    """The response a blocked call gets: the rule's status, headers and body."""
    headers: List[Tuple[bytes, bytes]] = [
        (k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in decision.headers.items()
    ]
    if not any(k == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(decision.body)).encode("ascii")))
    start: Message = {"type": "http.response.start", "status": decision.status or 403, "headers": headers}
    body: Message = {"type": "http.response.body", "body": decision.body, "more_body": False}
    return start, body
