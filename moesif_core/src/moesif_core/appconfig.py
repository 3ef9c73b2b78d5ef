"""The application's config (``GET /v1/config``) and governance rules (``GET /v1/rules``), parsed and validated.

Parsing is strict about the document's shape and forgiving about single entries: a document that is not the
expected JSON type is refused whole (the caller keeps the last good one), while one bad regex or one rule missing a
field is skipped with a warning instead of taking the others down with it (the originals crashed requests on
both). Field names follow docs/originals.md.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Pattern, Tuple

from .saferegex import compile_bounded

logger = logging.getLogger("moesif")

Condition = Tuple[str, Pattern[str]]


def _rate(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: sample rate must be a number from 0 to 100, got {value!r}")
    return float(min(max(value, 0), 100))


def _conditions(raw: Any, where: str) -> List[Condition]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: conditions must be a list")
    out: List[Condition] = []
    for cond in raw:
        if not isinstance(cond, Mapping) or not isinstance(cond.get("path"), str):
            raise ValueError(f"{where}: a condition needs a 'path' string")
        try:
            out.append((cond["path"], compile_bounded(str(cond.get("value", "")))))
        except re.error as exc:
            raise ValueError(f"{where}: invalid regex {cond.get('value')!r}: {exc}") from exc
        except ValueError as exc:  # nested quantifiers: see saferegex
            raise ValueError(f"{where}: {exc}") from exc
    return out


@dataclass(frozen=True)
class RegexSampling:
    conditions: List[Condition]
    sample_rate: float


@dataclass(frozen=True)
class CohortEntry:
    """An entity's membership of a rule's cohort, with its values for the rule's ``{{name}}`` variables."""

    rule_id: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class AppConfig:
    sample_rate: float = 100.0
    user_sample_rate: Mapping[str, float] = field(default_factory=dict)
    company_sample_rate: Mapping[str, float] = field(default_factory=dict)
    regex_config: List[RegexSampling] = field(default_factory=list)
    user_rules: Mapping[str, List[CohortEntry]] = field(default_factory=dict)
    company_rules: Mapping[str, List[CohortEntry]] = field(default_factory=dict)
    #: ``False`` only for the placeholder in force before the first fetch ends: nothing can be decided with it
    #: (not even "sample everything"), so adapters capture undecided and the worker decides later.
    known: bool = True

    @property
    def samples_everything(self) -> bool:
        return (
            self.known
            and self.sample_rate >= 100
            and not self.regex_config
            and not self.user_sample_rate
            and not self.company_sample_rate
        )

    @classmethod
    def parse(cls, doc: Any) -> AppConfig:
        """Build from the decoded JSON document; ``ValueError`` if it is not a config object."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"config must be a JSON object, got {type(doc).__name__}")
        sample_rate = _rate(doc.get("sample_rate", 100), "sample_rate") if doc.get("sample_rate") is not None else 100.0
        maps: Dict[str, Dict[str, float]] = {}
        for key in ("user_sample_rate", "company_sample_rate"):
            raw = doc.get(key) or {}
            if not isinstance(raw, Mapping):
                raise ValueError(f"{key} must be an object of id -> rate")
            maps[key] = {}
            for ident, rate in raw.items():
                try:
                    maps[key][str(ident)] = _rate(rate, f"{key}[{ident!r}]")
                except ValueError as exc:
                    logger.warning("moesif: config: %s; entry ignored", exc)
        regex: List[RegexSampling] = []
        raw_regex = doc.get("regex_config") or []
        if not isinstance(raw_regex, list):
            raise ValueError("regex_config must be a list")
        for i, entry in enumerate(raw_regex):
            try:
                if not isinstance(entry, Mapping):
                    raise ValueError("entry must be an object")
                regex.append(
                    RegexSampling(
                        _conditions(entry.get("conditions") or [], f"regex_config[{i}]"),
                        _rate(entry.get("sample_rate"), f"regex_config[{i}]"),
                    )
                )
            except ValueError as exc:
                logger.warning("moesif: config: regex_config[%d] ignored: %s", i, exc)
        return cls(
            sample_rate=sample_rate,
            user_sample_rate=maps["user_sample_rate"],
            company_sample_rate=maps["company_sample_rate"],
            regex_config=regex,
            user_rules=_cohorts(doc.get("user_rules"), "user_rules"),
            company_rules=_cohorts(doc.get("company_rules"), "company_rules"),
        )


def _cohorts(raw: Any, key: str) -> Mapping[str, List[CohortEntry]]:
    if not raw:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{key} must be an object of id -> list of rule entries")
    out: Dict[str, List[CohortEntry]] = {}
    for ident, entries in raw.items():
        if not isinstance(entries, list):
            logger.warning("moesif: config: %s[%r] is not a list; ignored", key, ident)
            continue
        kept = []
        for entry in entries:
            if isinstance(entry, Mapping) and isinstance(entry.get("rules"), str):
                values = entry.get("values")
                kept.append(CohortEntry(entry["rules"], values if isinstance(values, Mapping) else {}))
        out[str(ident)] = kept
    return out


@dataclass(frozen=True)
class Rule:
    """One governance rule."""

    id: str
    type: str  # "regex" | "user" | "company"
    block: bool
    applied_to: str  # "matching" | "not_matching"
    applied_to_unidentified: bool
    #: condition groups: OR between groups, AND inside one; empty matches every request
    groups: List[List[Condition]]
    status: Optional[int]
    headers: Mapping[str, Any]
    body: Any
    variables: List[Tuple[str, str]]

    @classmethod
    def parse(cls, raw: Any, index: int) -> Rule:
        where = f"rules[{index}]"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where} must be an object")
        rule_id = raw.get("_id") or raw.get("id")
        if not isinstance(rule_id, str):
            raise ValueError(f"{where} has no '_id'")
        kind = raw.get("type")
        if kind not in ("regex", "user", "company"):
            raise ValueError(f"{where} ({rule_id}): type must be regex, user or company, got {kind!r}")
        groups = []
        for j, group in enumerate(raw.get("regex_config") or []):
            if not isinstance(group, Mapping):
                raise ValueError(f"{where} ({rule_id}): regex_config[{j}] must be an object")
            groups.append(_conditions(group.get("conditions") or [], f"{where} ({rule_id}) regex_config[{j}]"))
        response = raw.get("response") or {}
        if not isinstance(response, Mapping):
            raise ValueError(f"{where} ({rule_id}): response must be an object")
        block = bool(raw.get("block", False))
        status = response.get("status")
        if block and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999):
            raise ValueError(f"{where} ({rule_id}): a blocking rule needs response.status 100-999, got {status!r}")
        headers = response.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise ValueError(f"{where} ({rule_id}): response.headers must be an object")
        variables = []
        for var in raw.get("variables") or []:
            if isinstance(var, Mapping) and isinstance(var.get("name"), str):
                variables.append((var["name"], str(var.get("path", ""))))
        return cls(
            id=rule_id,
            type=kind,
            block=block,
            applied_to="not_matching" if raw.get("applied_to") == "not_matching" else "matching",
            applied_to_unidentified=bool(raw.get("applied_to_unidentified", False)),
            groups=groups,
            status=status if isinstance(status, int) else None,
            headers=dict(headers),
            body=response.get("body"),
            variables=variables,
        )


def parse_rules(doc: Any) -> List[Rule]:
    """The rules list; ``ValueError`` if the document is not a list. Bad rules are skipped and logged."""
    if not isinstance(doc, list):
        raise ValueError(f"rules must be a JSON list, got {type(doc).__name__}")
    rules = []
    for i, raw in enumerate(doc):
        try:
            rules.append(Rule.parse(raw, i))
        except ValueError as exc:
            logger.warning("moesif: governance rule ignored: %s", exc)
    return rules
