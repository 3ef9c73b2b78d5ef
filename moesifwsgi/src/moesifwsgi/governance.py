"""What the server's config asks of a request before the app runs: early sampling and governance rules.

Nothing here runs while the config samples every call and there are no rules (the default): the middleware checks
that with one tuple read per request. Otherwise, before the app is called:

- Sampling: when the config's rate for this call can be decided from the verb, path and IP alone, it is decided
  now (a call that is not sampled costs no capture work at all); when it needs the user, company or status, the
  agent's worker decides it later.
- Governance: the rules are evaluated on the verb, URL, IP, headers, the user and company (the ``IDENTIFY_USER`` and
  ``IDENTIFY_COMPANY`` callbacks are called early for this, with an empty response-headers dict, as the original
  did; the user falls back to the authorization header) and, only when a rule looks at ``request.body.*``, the JSON
  body (read ahead, when it fits in ``MAX_BODY_SIZE``, and handed to the app as an in-memory stream). A blocked
  call gets the rule's status, headers and body without the app being called; headers of non-blocking rules are
  added to the app's response (replacing a same-named header of the app's).
"""

from __future__ import annotations

import io
import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from moesif_core.governance import RequestFacts, rules_need_body
from moesif_core.identity import client_ip, user_from_headers

from .request_body import TeeInput, content_length

if TYPE_CHECKING:
    from moesif_core.appconfig import AppConfig, Rule

    from .middleware import Call

logger = logging.getLogger("moesif")

_UNPREFIXED = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}


def lower_headers(environ: Dict[str, Any]) -> Dict[str, str]:
    """The request headers with lower-case names (``x-api-key``), as rules and identity name them."""
    out: Dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out[key[5:].replace("_", "-").lower()] = value
        elif key in _UNPREFIXED and value:
            out[_UNPREFIXED[key]] = value
    return out


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Blocked"


def _read_ahead(call: Call, environ: Dict[str, Any]) -> Any:
    """Read a body of known length within the cap now, give the app an in-memory stream, return the parsed JSON."""
    length = content_length(environ.get("CONTENT_LENGTH"))
    if length is None or length > call.mw.max_body_size:
        return None
    stream = call.input_stream if call.input_stream is not None else environ.get("wsgi.input")
    if stream is None:
        return None
    data = stream.read(length) if length else b""
    buffered = io.BytesIO(data)
    call.input_stream = buffered
    environ["wsgi.input"] = TeeInput(buffered, call.request_tap) if call.request_tap is not None else buffered
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            return json.loads(data)
        except ValueError:
            return None
    return None


def apply(call: Call, environ: Dict[str, Any], config: AppConfig, rules: Sequence[Rule]) -> Optional[Iterable[bytes]]:
    """Sample early and govern; returns the blocked response to hand back, or ``None`` to call the app."""
    mw = call.mw
    headers = lower_headers(environ)
    ip = client_ip(headers, call.peer_ip)
    path = urlsplit(call.uri).path or "/"
    if not config.samples_everything:
        weight = mw.agent.sample_early(call.method, path, ip)
        if weight is None:
            call.drop_capture()
        elif weight > 0:
            call.weight = weight
    if not rules:
        return None
    app = mw.app
    user_id = company_id = None
    if mw.identify_user is not None:
        user_id = mw.identify_user(app, environ, {})
    if not user_id:
        opts = mw.options
        user_id = user_from_headers(headers, opts.authorization_header_name, opts.authorization_user_id_field)
    if mw.identify_company is not None:
        company_id = mw.identify_company(app, environ, {})
    body = None
    if rules_need_body(rules):
        try:
            body = _read_ahead(call, environ)
        except Exception:
            logger.debug("moesif: could not read the body ahead for governance", exc_info=True)
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
        call.extra_headers = list(decision.headers.items())
        return None
    out: List[Tuple[str, str]] = list(decision.headers.items())
    if not any(k.lower() == "content-length" for k, _ in out):
        out.append(("Content-Length", str(len(decision.body))))
    call.blocked_by = decision.blocked_by
    call.start_response(_status_line(decision.status or 403), out)
    return call.wrap([decision.body])
