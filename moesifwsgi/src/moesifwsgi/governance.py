"""The core's pre-app decision (:mod:`moesif_core.preapp`: early sampling and governance) in WSGI terms.

Nothing here runs while the config samples every call and there are no rules (the default). Otherwise, before the
app is called, this hands the core the facts as a WSGI environ holds them and renders its answer:

- Not sampled: the call drops its capture (the transaction id header is still added).
- With governance rules: ``IDENTIFY_USER`` and ``IDENTIFY_COMPANY`` are called early, with an empty
  response-headers dict, as the original did; only when a rule looks at ``request.body.*``, a body of known length
  within ``MAX_BODY_SIZE`` is read ahead and handed to the app as an in-memory stream.
- A blocked call gets the rule's status line, headers (with ``Content-Length``) and body through
  ``start_response`` without the app being called; headers of non-blocking rules are added to the app's response
  (replacing a same-named header of the app's).
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any, Dict, Iterable, Optional
from urllib.parse import urlsplit

from moesif_core import TeeStream, content_length, json_body, lower_headers

if TYPE_CHECKING:
    from moesif_core import EarlyDecision

    from .middleware import Call

logger = logging.getLogger("moesif")


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
    environ["wsgi.input"] = TeeStream(buffered, call.request_tap) if call.request_tap is not None else buffered
    return json_body(data)


def apply(call: Call, environ: Dict[str, Any], early: EarlyDecision) -> Optional[Iterable[bytes]]:
    """Sample early and govern; returns the blocked response to hand back, or ``None`` to call the app."""
    headers = lower_headers(call.request_headers, wsgi=True)
    if not early.sample(call.method, urlsplit(call.uri).path, headers, call.peer_ip):
        call.drop_capture()
    call.weight = early.weight
    if not early.governs:
        return None
    mw = call.mw
    app = mw.app
    user_id = mw.identify_user(app, environ, {}) if mw.identify_user is not None else None
    company_id = mw.identify_company(app, environ, {}) if mw.identify_company is not None else None
    body = None
    if early.needs_body:
        try:
            body = _read_ahead(call, environ)
        except Exception:
            logger.debug("moesif: could not read the body ahead for governance", exc_info=True)
    early.govern(call.uri, user_id, company_id, body)
    if not early.blocked:
        if early.headers:
            call.extra_headers = early.headers
        return None
    call.blocked_by = early.blocked_by
    call.start_response(early.status_line, early.headers_with_length())
    return call.wrap([early.body])
