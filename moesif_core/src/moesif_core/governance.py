"""Governance: decide, before the app runs, whether a request is blocked by a rule, and with what response.

Rules come from ``GET /v1/rules`` and cohort membership (with each entity's values for ``{{name}}`` variables)
from the config's ``user_rules``/``company_rules``. Order and precedence follow the originals: regex rules, then
company rules, then user rules; every matching rule's headers are merged (a later one wins a shared name); the last
*blocking* rule sets the status and body and is recorded as ``blocked_by``. Differences, on purpose:

- ``request.route`` matches the path or the full URL (rules written as ``^/v1/...`` work, as do host matches);
  ``request.ip_address`` and ``request.ip`` both name the client IP.
- A rule naming a deleted rule id, a bad regex or a non-string value never fails the request: it is skipped.
- Variables substitute into strings at any depth, lists included; a declared variable without a value becomes
  ``UNKNOWN``; a value the cohort entry carries is substituted even if the rule did not declare it.
- A blocked response always has a ``Content-Type`` (``application/json`` unless the rule sets one).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from .appconfig import AppConfig, Condition, Rule
from .saferegex import search_bounded

logger = logging.getLogger("moesif")


@dataclass
class RequestFacts:
    """What rules can match on, gathered by the adapter before the app runs."""

    verb: str
    uri: str
    path: str
    ip: Optional[str]
    #: lower-case header names
    headers: Mapping[str, str]
    user_id: Optional[str] = None
    company_id: Optional[str] = None
    #: parsed JSON request body when the adapter has it cheaply (``None`` otherwise)
    body: Any = None


@dataclass
class Decision:
    """The outcome for one request: headers to add, and, when blocked, the response to send instead."""

    headers: Dict[str, str] = field(default_factory=dict)
    blocked_by: Optional[str] = None
    status: Optional[int] = None
    body: bytes = b""

    @property
    def blocked(self) -> bool:
        return self.blocked_by is not None


def _value(facts: RequestFacts, path: str) -> List[str]:
    """Candidate strings for a condition path (several for ``request.route``)."""
    if path == "request.verb":
        return [facts.verb]
    if path == "request.route":
        return [facts.path, facts.uri]
    if path in ("request.ip_address", "request.ip"):
        return [facts.ip] if facts.ip else []
    if path.startswith("request.headers."):
        value = facts.headers.get(path[len("request.headers.") :].lower())
        return [value] if value else []
    if path.startswith("request.body.") and isinstance(facts.body, Mapping):
        node: Any = facts.body
        for part in path[len("request.body.") :].split("."):
            if not isinstance(node, Mapping) or part not in node:
                return []
            node = node[part]
        if isinstance(node, (str, int, float)) and not isinstance(node, bool):
            return [str(node)]
    return []


_needs_body_cache: tuple[Optional[Sequence[Rule]], bool] = (None, False)


def rules_need_body(rules: Sequence[Rule]) -> bool:
    """Whether any rule has a ``request.body.*`` condition, so an adapter reads the body ahead only then
    (remembered for the rules object in force: one identity check per request)."""
    global _needs_body_cache
    cached_rules, needs = _needs_body_cache
    if cached_rules is rules:
        return needs
    needs = any(path.startswith("request.body.") for r in rules for group in r.groups for path, _ in group)
    _needs_body_cache = (rules, needs)
    return needs


def _group_matches(group: Sequence[Condition], facts: RequestFacts) -> bool:
    if not group:
        return False
    return all(any(search_bounded(pattern, v) for v in _value(facts, path)) for path, pattern in group)


def regex_matches(rule: Rule, facts: RequestFacts) -> bool:
    """No condition groups: every request. Otherwise any group whose conditions all match."""
    if not rule.groups:
        return True
    return any(_group_matches(g, facts) for g in rule.groups)


def _substitute(value: Any, variables: Sequence[tuple[str, str]], values: Mapping[str, Any]) -> Any:
    """Replace ``{{name}}`` for the rule's declared variables and for every name the entity has a value for."""
    if isinstance(value, str):
        names = [name for name, _ in variables] + [str(k) for k in values]
        for name in names:
            token = "{{" + name + "}}"
            if token in value:
                replacement = values.get(name)
                value = value.replace(token, "UNKNOWN" if replacement is None else str(replacement))
        return value
    if isinstance(value, Mapping):
        return {k: _substitute(v, variables, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, values) for v in value]
    return value


def _entity_rules(
    kind: str, entity: Optional[str], cohorts: Mapping[str, List[Any]], rules: Mapping[str, Rule], facts: RequestFacts
) -> List[tuple[Rule, Mapping[str, Any]]]:
    of_kind = [r for r in rules.values() if r.type == kind]
    if entity is None:
        return [(r, {}) for r in of_kind if r.applied_to_unidentified and regex_matches(r, facts)]
    entries = cohorts.get(entity, [])
    in_cohort = {e.rule_id for e in entries}
    out: List[tuple[Rule, Mapping[str, Any]]] = []
    for entry in entries:
        rule = rules.get(entry.rule_id)
        if rule is None or rule.type != kind:
            continue  # a deleted rule, or one of the other kind
        if rule.applied_to == "matching" and regex_matches(rule, facts):
            out.append((rule, entry.values))
    for rule in of_kind:
        if rule.applied_to == "not_matching" and rule.id not in in_cohort and regex_matches(rule, facts):
            out.append((rule, {}))
    return out


def evaluate(rules: Sequence[Rule], config: AppConfig, facts: RequestFacts) -> Optional[Decision]:
    """The decision for one request, or ``None`` when no rule applies."""
    by_id = {r.id: r for r in rules}
    applied: List[tuple[Rule, Mapping[str, Any]]] = [
        (r, {}) for r in rules if r.type == "regex" and regex_matches(r, facts)
    ]
    applied += _entity_rules("company", facts.company_id, config.company_rules, by_id, facts)
    applied += _entity_rules("user", facts.user_id, config.user_rules, by_id, facts)
    if not applied:
        return None
    decision = Decision()
    body: Any = None
    for rule, values in applied:
        headers = _substitute(dict(rule.headers), rule.variables, values)
        for name, value in headers.items():
            decision.headers[str(name)] = str(value)
        if rule.block:
            decision.blocked_by = rule.id
            decision.status = rule.status
            body = _substitute(rule.body, rule.variables, values)
    if decision.blocked:
        decision.body = b"" if body is None else json.dumps(body).encode("utf-8")
        if not any(k.lower() == "content-type" for k in decision.headers):
            decision.headers["Content-Type"] = "application/json"
    return decision


class Governor:
    """Holds the current rules and config; ``evaluate`` is safe to call from any thread and never raises."""

    def __init__(self, current: Callable[[], tuple[AppConfig, Sequence[Rule]]]) -> None:
        self._current = current

    @property
    def active(self) -> bool:
        """Whether any rule exists (adapters skip all governance work when not)."""
        return bool(self._current()[1])

    def evaluate(self, facts: RequestFacts) -> Optional[Decision]:
        config, rules = self._current()
        if not rules:
            return None
        try:
            return evaluate(rules, config, facts)
        except Exception:
            logger.warning("moesif: governance evaluation failed; the request goes on", exc_info=True)
            return None
