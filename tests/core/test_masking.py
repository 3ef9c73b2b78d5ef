"""Masks remove every copy of a header or body key, as the originals did: any case, any depth, inside arrays."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from moesif_core.masking import mask_body, mask_headers, normalise


def test_headers_are_removed_case_insensitively() -> None:
    h = {"Authorization": "Bearer x", "X-Api-Key": "k", "Accept": "*/*"}
    assert mask_headers(h, normalise(["authorization", "X-API-KEY"])) is h
    assert h == {"Accept": "*/*"}


def test_body_keys_are_removed_at_any_depth_inside_arrays_and_any_case() -> None:
    body = {"Password": "a", "user": {"password": "b", "list": [{"PASSWORD": "c", "k": 1}, [{"password": "d"}]]}}
    body["name"] = "n"
    assert mask_body(body, normalise(["password"])) is body
    assert body == {"user": {"list": [{"k": 1}, [{}]]}, "name": "n"}


def test_a_removed_key_takes_its_subtree() -> None:
    body = {"card": {"number": "4111", "cvc": "123"}, "amount": 5}
    assert mask_body(body, normalise(["card"])) == {"amount": 5}


def test_no_masks_leave_everything() -> None:
    body = {"password": "p"}
    assert mask_body(body, normalise([])) == {"password": "p"}
    assert mask_headers({"Authorization": "x"}, normalise(["", "  "])) == {"Authorization": "x"}
    assert mask_body("a string", normalise(["password"])) == "a string"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["secret", "SECRET", "Secret", "a", "b"]), children, max_size=4)
    ),
    max_leaves=30,
)


def _keys(node: object) -> list[str]:
    if isinstance(node, dict):
        return [k for k in node] + [k for v in node.values() for k in _keys(v)]
    if isinstance(node, list):
        return [k for v in node for k in _keys(v)]
    return []


def _without_secret(node: object) -> object:
    """What masking ``secret`` should leave, computed the obvious (recursive, copying) way."""
    if isinstance(node, dict):
        return {k: _without_secret(v) for k, v in node.items() if k.lower() != "secret"}
    if isinstance(node, list):
        return [_without_secret(v) for v in node]
    return node


@given(json_values)
def test_no_secret_survives_and_nothing_else_goes(body: object) -> None:
    expected = _without_secret(body)
    masked = mask_body(body, normalise(["secret"]))
    assert not [k for k in _keys(masked) if k.lower() == "secret"]
    assert masked == expected
