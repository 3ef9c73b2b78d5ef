"""Masks reach every copy of a header or field: any case, any depth, inside arrays."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from moesif_core.masking import MASK, mask_body, mask_headers, normalise


def test_headers_case_insensitive() -> None:
    h = {"Authorization": "Bearer x", "X-Api-Key": "k", "Accept": "*/*"}
    mask_headers(h, normalise(["authorization", "X-API-KEY"]))
    assert h == {"Authorization": MASK, "X-Api-Key": MASK, "Accept": "*/*"}


def test_body_nested_arrays_and_case() -> None:
    body = {"Password": "a", "user": {"password": "b", "list": [{"PASSWORD": "c"}, [{"password": "d"}]]}, "name": "n"}
    mask_body(body, normalise(["password"]))
    assert not {'"a"', '"b"', '"c"', '"d"'} & set(json.dumps(body).replace(",", " ").replace(":", " ").split())
    assert body["user"]["list"][0]["PASSWORD"] == MASK
    assert body["user"]["list"][1][0]["password"] == MASK
    assert body["name"] == "n"


def test_masking_a_subtree_replaces_it_whole() -> None:
    body = {"card": {"number": "4111", "cvc": "123"}}
    mask_body(body, normalise(["card"]))
    assert body == {"card": MASK}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["secret", "SECRET", "Secret", "a", "b"]), children, max_size=4)
    ),
    max_leaves=30,
)


def _secret_leaks(node: object) -> bool:
    if isinstance(node, dict):
        return any((k.lower() == "secret" and v != MASK) or _secret_leaks(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_secret_leaks(v) for v in node)
    return False


@given(json_values)
def test_no_secret_survives_anywhere(body: object) -> None:
    masked = mask_body(body, normalise(["secret"]))
    assert not _secret_leaks(masked)
