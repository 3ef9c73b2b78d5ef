"""The decision made before the app runs: early sampling and governance, once for every adapter.

The server's config may sample less than every call (``GET /v1/config``) and may hold governance rules
(``GET /v1/rules``). Both act before the app is called, so a call that is not sampled costs no capture work and a
blocked call never reaches the app. The rule lives here; an adapter only hands over the facts in its framework's
terms and renders the answer in them::

    preapp = PreApp(agent)                         # once, with the middleware
    early = preapp.begin()                         # per request: None in the default config (nothing to decide)
    if early is not None:
        early.sample(method, path, lower_headers(pairs), peer_ip)
        if not early.capture: ...                  # not sampled: capture nothing (still add the transaction id)
        if early.governs:
            body = <the parsed JSON body, read ahead> if early.needs_body else None
            early.govern(uri, <IDENTIFY_USER(...)>, <IDENTIFY_COMPANY(...)>, body)
            if early.blocked: <answer early.status, early.headers, early.body without calling the app>
            elif early.headers: <add early.headers to the app's response, replacing same-named ones>
        <put early.weight and early.blocked_by in the RawCapture>

What is decided here, in the originals' order:

- **Sampling**: when the config's rate for the call can be decided from the verb, path and client IP alone, it is
  drawn now (``capture`` False: not sampled; ``weight``: the kept call's weight). When the rate needs the user,
  company or status, the agent's worker decides after capture (``weight`` stays ``None``).
- **The user and company for the rules**: what ``IDENTIFY_USER``/``IDENTIFY_COMPANY`` return when called before the
  app (the adapter calls them: only it knows its callbacks' signatures and whether it may await); an empty or
  absent user falls back to the authorization header (``AUTHORIZATION_HEADER_NAME``/``_USER_ID_FIELD``).
- **Governance** (:mod:`moesif_core.governance`): the rules on the verb, URL, path, IP, headers, user, company and
  (only when a rule names ``request.body.*``) the JSON body. A blocked call gets the rule's status (403 if it sets
  none), headers (``Content-Type: application/json`` unless the rule sets one) and body; a non-blocking rule's
  headers go on the app's response.

Nothing here raises into the request (a failing rule is logged and skipped by the governor).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union, cast

from .governance import RequestFacts, rules_need_body
from .identity import client_ip, user_from_headers

if TYPE_CHECKING:
    from .agent import Agent
    from .appconfig import AppConfig, Rule

#: The status of a blocked call whose rule sets none.
DEFAULT_BLOCKED_STATUS = 403

HeaderName = Union[str, bytes]


def lower_headers(pairs: Iterable[Tuple[HeaderName, Any]], wsgi: bool = False) -> Dict[str, str]:
    """Request headers as governance and client-IP rules name them: ``{"x-api-key": value}``.

    ``pairs`` are ``(name, value)`` as the framework holds them (ASGI's latin-1 bytes included); with ``wsgi`` they
    are environ items (``HTTP_X_CASE`` -> ``x-case``, ``CONTENT_TYPE`` -> ``content-type``, see
    :func:`moesif_core.environ.environ_header_pairs`). Otherwise a repeated header's values are joined with
    ``", "``.
    """
    out: Dict[str, str] = {}
    if wsgi:  # environ keys are unique: no joining, and one loop without type checks (the common adapters' case)
        for key, value in cast(Iterable[Tuple[str, Any]], pairs):
            out[(key[5:] if key[:5] == "HTTP_" else key).replace("_", "-").lower()] = str(value)
        return out
    for raw_name, value in pairs:
        name = (raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name).lower()
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        out[name] = out[name] + ", " + text if name in out else text
    return out


def _id(value: Any) -> Optional[str]:
    return None if value is None or value == "" else str(value)


class PreApp:
    """The pre-app decision for one middleware (one agent and its settings)."""

    __slots__ = ("agent", "_samples_all")

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        #: the last config seen to sample every call, so the default case is one identity check
        self._samples_all: Any = None

    def begin(self) -> Optional[EarlyDecision]:
        """``None`` while the config samples every call and there are no rules (the default: one tuple read and
        one identity check, no allocation): call the app as usual. Otherwise the decision to fill in."""
        config, rules = self.agent.remote.current()
        if not rules and (config is self._samples_all or self._samples_everything(config)):
            return None
        return EarlyDecision(self.agent, config, rules)

    def _samples_everything(self, config: AppConfig) -> bool:
        if config.samples_everything:
            self._samples_all = config
            return True
        return False


class EarlyDecision:
    """One call's decision before the app: filled in by :meth:`sample` and :meth:`govern`, read by the adapter."""

    __slots__ = (
        "agent",
        "config",
        "rules",
        "verb",
        "path",
        "request_headers",
        "ip",
        "capture",
        "weight",
        "blocked_by",
        "status",
        "headers",
        "body",
    )

    def __init__(self, agent: Agent, config: AppConfig, rules: Sequence[Rule]) -> None:
        self.agent = agent
        self.config = config
        self.rules = rules
        self.verb = "GET"
        self.path = "/"
        self.request_headers: Mapping[str, str] = {}
        self.ip: Optional[str] = None
        #: ``False``: not sampled; capture nothing (the response still gets its transaction id header)
        self.capture = True
        #: the kept call's sampling weight (``None``: everything is sampled, or the worker decides)
        self.weight: Optional[int] = None
        #: the id of the rule that blocked the call (``None``: the app is called)
        self.blocked_by: Optional[str] = None
        #: a blocked call's status
        self.status = DEFAULT_BLOCKED_STATUS
        #: blocked: the response's headers; not blocked: headers to add to the app's response (may be empty)
        self.headers: List[Tuple[str, str]] = []
        #: a blocked call's response body
        self.body = b""

    @property
    def governs(self) -> bool:
        """Whether there are governance rules (the adapter then calls :meth:`govern`)."""
        return bool(self.rules)

    @property
    def needs_body(self) -> bool:
        """Whether a rule looks at ``request.body.*`` (only then does the adapter read the body ahead)."""
        return rules_need_body(self.rules)

    @property
    def blocked(self) -> bool:
        return self.blocked_by is not None

    @property
    def status_line(self) -> str:
        """``"410 Gone"``, for WSGI's ``start_response``."""
        try:
            return f"{self.status} {HTTPStatus(self.status).phrase}"
        except ValueError:
            return f"{self.status} Blocked"

    def sample(self, verb: str, path: str, headers: Mapping[str, str], peer_ip: Optional[str]) -> bool:
        """Early sampling, from the verb, the path (without the query), the lower-case request headers (see
        :func:`lower_headers`) and the peer address. Returns :attr:`capture`."""
        self.verb = verb
        self.path = path or "/"
        self.request_headers = headers
        self.ip = ip = client_ip(headers, peer_ip)
        if not self.config.samples_everything:
            weight = self.agent.sample_early(verb, self.path, ip)
            if weight is None:
                self.capture = False
            elif weight > 0:
                self.weight = weight
        return self.capture

    def govern(self, uri: str, user_id: Any = None, company_id: Any = None, body: Any = None) -> None:
        """Evaluate the rules (after :meth:`sample`) with what ``IDENTIFY_USER``/``IDENTIFY_COMPANY`` gave before the
        app and, when :attr:`needs_body`, the parsed JSON body (:func:`moesif_core.body.json_body`)."""
        user = _id(user_id)
        if user is None:
            s = self.agent.settings
            user = user_from_headers(self.request_headers, s.authorization_header_name, s.authorization_user_id_field)
        facts = RequestFacts(
            verb=self.verb,
            uri=uri,
            path=self.path,
            ip=self.ip,
            headers=self.request_headers,
            user_id=user,
            company_id=_id(company_id),
            body=body,
        )
        decision = self.agent.governor.evaluate(facts)
        if decision is None:
            return
        self.headers = list(decision.headers.items())
        if decision.blocked:
            self.blocked_by = decision.blocked_by
            self.status = decision.status or DEFAULT_BLOCKED_STATUS
            self.body = decision.body

    def headers_with_length(self) -> List[Tuple[str, str]]:
        """A blocked call's headers with ``Content-Length`` (unless the rule set one), for adapters that write the
        response on the wire protocol themselves (WSGI, ASGI); a framework's response object (Django's) is sized
        further down its stack."""
        headers = self.headers
        if any(k.lower() == "content-length" for k, _ in headers):
            return headers
        return [*headers, ("Content-Length", str(len(self.body)))]
