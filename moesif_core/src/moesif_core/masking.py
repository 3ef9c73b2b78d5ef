"""The ``*_MASKS`` settings: replace the values of named headers and body fields with a fixed marker.

Header names and body keys compare case-insensitively, and body masks reach every copy of a key, however deep in
objects and arrays, so a secret cannot slip through by changing its case or nesting.
"""

from __future__ import annotations

from typing import Any, Collection, Dict, FrozenSet

MASK = "*****"


def normalise(names: Collection[str]) -> FrozenSet[str]:
    return frozenset(n.strip().lower() for n in names if n and n.strip())


def mask_headers(headers: Dict[str, Any], names: FrozenSet[str]) -> Dict[str, Any]:
    """Mask in place and return ``headers``."""
    if names:
        for key in headers:
            if key.lower() in names:
                headers[key] = MASK
    return headers


def mask_body(body: Any, names: FrozenSet[str]) -> Any:
    """Return ``body`` (parsed JSON) with every value under a masked key replaced, at any depth."""
    if not names:
        return body
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.lower() in names:
                    node[key] = MASK
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return body
