"""The ``*_MASKS`` settings: remove the named headers and body keys from the event, as the originals did.

The originals documented these lists as filters and dropped what they named (``headers.pop(name)``, and
``body.pop(key)`` recursively through objects and arrays); a team's masks are privacy rules, so the effect is kept
exactly: the header or key is absent from the event, not present with a placeholder. One difference, on purpose:
header names *and* body keys compare case-insensitively (the originals' body masks were exact-case), and body masks
reach every copy of a key, however deep in objects and arrays, so a secret cannot slip through by changing its case
or nesting. This module is the one rule: the event builder (incoming and outgoing events, every adapter) and
``moesifdjango.masks.MaskData`` use it.
"""

from __future__ import annotations

from typing import Any, Collection, FrozenSet, MutableMapping


def normalise(names: Collection[str]) -> FrozenSet[str]:
    """The mask list as the set the functions below take: stripped, lower-case, blanks left out."""
    return frozenset(n.strip().lower() for n in names if isinstance(n, str) and n.strip())


def mask_headers(headers: MutableMapping[str, Any], names: FrozenSet[str]) -> MutableMapping[str, Any]:
    """Remove every header whose name (any case) is in ``names``, in place; returns ``headers``."""
    if names:
        for key in [k for k in headers if isinstance(k, str) and k.lower() in names]:
            del headers[key]
    return headers


def mask_body(body: Any, names: FrozenSet[str]) -> Any:
    """Remove every key (any case) in ``names`` from ``body`` (parsed JSON), at any depth, inside arrays too, in
    place; returns ``body``. A removed key takes its whole subtree with it."""
    if not names:
        return body
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in [k for k in node if isinstance(k, str) and k.lower() in names]:
                del node[key]
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return body
