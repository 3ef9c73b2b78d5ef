"""Regexes from the config server (sampling ``regex_config``, governance rules), bounded before they run on the
request thread.

The config source is trusted, but one careless rule must not stall every request: Python's ``re`` backtracks,
so ``^/(a+)+$`` costs exponential time on ``/aaaa...!`` (0.6 s at 23 characters), and several unbounded
quantifiers in a row (``.*.*x``) cost polynomial time. Two bounds, both here, used by ``appconfig`` (compiling)
and by ``sampling`` and ``governance`` (matching):

- **Nested quantifiers are refused when the rule is compiled**: a group repeated without bound (``*``, ``+``,
  ``{n,}``) that holds a quantifier of variable count (``(a+)+``, ``(\\w*/)*``, ``(x{1,3})+``) is the shape of
  exponential backtracking. The rule (or sampling entry) is skipped with a warning, as an invalid regex is.
  Rewrite it without the outer repetition, or with a bounded one (``(\\d{1,3}\\.){3}`` is fine).
- **Each value is matched on its first** :data:`MAX_MATCHED_CHARS` **characters** (1024), so what is left, such as
  a chain of ``.*``, has a bounded worst case (``.*.*!`` on 1024 characters: about 0.5 s on a loaded 2-core machine;
  a rule like that is still a mistake, but no longer one that grows without bound). Prefix rules (``^/admin``)
  match as before on long values; a rule that needs a character past the first 1024 (``\\.php$`` on a
  2000-character path) does not match.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Optional, Pattern

#: Characters of each value a configured regex is matched against (the first ones).
MAX_MATCHED_CHARS = 1024

try:  # the parser the re module compiles with (``re._parser`` from Python 3.11, ``sre_parse`` before)
    _parser: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - Python < 3.11
    _parser = importlib.import_module("sre_parse")

_REPEATS = {str(op) for op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")}


def compile_bounded(source: str) -> Pattern[str]:
    """Compile a configured regex; ``re.error`` when it is invalid, ``ValueError`` when it nests quantifiers."""
    pattern = re.compile(source)
    nested = _nested_quantifier(_parser.parse(source))
    if nested:
        raise ValueError(
            f"regex {source!r} repeats a group that itself holds a quantifier ({nested}): that can take exponential"
            " time on a non-matching value, so the rule is not used; rewrite it without the nested repetition"
        )
    return pattern


def search_bounded(pattern: Pattern[str], value: str) -> bool:
    """Whether ``pattern`` matches somewhere in the first :data:`MAX_MATCHED_CHARS` characters of ``value``."""
    return pattern.search(value[:MAX_MATCHED_CHARS]) is not None


def _is_repeat(op: Any) -> bool:
    return str(op) in _REPEATS


def _unbounded(high: Any) -> bool:
    return bool(high == _parser.MAXREPEAT)


def _nested_quantifier(items: Any, inside_unbounded: bool = False) -> Optional[str]:
    """The first quantifier of variable count inside an unbounded repetition, described; ``None`` if there is none."""
    for op, av in items:
        if _is_repeat(op):
            low, high, body = av
            if inside_unbounded and low != high:
                return "a quantifier inside a repeated group"
            found = _nested_quantifier(body, inside_unbounded or _unbounded(high))
            if found:
                return found
            continue
        for child in _children(op, av):
            found = _nested_quantifier(child, inside_unbounded)
            if found:
                return found
    return None


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-patterns of one parsed item (groups, alternatives, lookarounds, conditionals)."""
    name = str(op)
    if name == "SUBPATTERN":
        return [av[-1]]
    if name == "BRANCH":
        return list(av[1])
    if name in ("ASSERT", "ASSERT_NOT"):
        return [av[1]]
    if name == "ATOMIC_GROUP":
        return [av]
    if name == "GROUPREF_EXISTS":
        return [p for p in av[1:] if p is not None]
    return []
