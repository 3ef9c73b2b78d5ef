"""``moesifdjango.masks.MaskData``: the original's public helper, with the original's signatures and results.

Each expectation below was observed with the original ``moesifdjango`` 2.3.13 (its own test suite imports this
class); the one difference on purpose is that body keys match case-insensitively, as the middleware's masks do.
"""

from __future__ import annotations

from moesifdjango.masks import MaskData


def test_mask_headers_removes_named_headers_and_lowercases_names() -> None:
    headers = {"Authorization": "x", "X-Keep": "y"}
    assert MaskData.mask_headers(headers, ["AUTHORIZATION", "header3"]) == {"x-keep": "y"}
    assert MaskData().mask_headers(headers, []) == {"authorization": "x", "x-keep": "y"}
    assert headers == {"Authorization": "x", "X-Keep": "y"}  # a new dict: the caller's is left alone


def test_mask_headers_none() -> None:
    headers = {"A": 1}
    assert MaskData().mask_headers(None, ["a"]) is None
    assert MaskData().mask_headers(headers, None) is headers


def test_mask_body_removes_keys_at_any_depth_inside_arrays() -> None:
    body = {"a": [1, 2, 3, {"b": 1}], "b": [1, 2, 3, {"c": 1}], "c": 123, "d": "a string"}
    result = MaskData().mask_body(body, ["c", "d"])
    assert result is body
    assert result == {"a": [1, 2, 3, {"b": 1}], "b": [1, 2, 3, {}]}
    nested = {"password": 1, "n": {"password": 3, "l": [{"password": 4}, [{"password": 5}]]}}
    assert MaskData.mask_body(nested, ["password"]) == {"n": {"l": [{}, [{}]]}}
    assert MaskData().mask_body([{"a": 1}], ["a"]) == [{}]


def test_mask_body_matches_keys_in_any_case() -> None:
    # the original kept "Password" for a mask "password"; our masks are case-insensitive everywhere
    assert MaskData().mask_body({"Password": 2, "k": 1}, ["password"]) == {"k": 1}


def test_mask_body_none_and_scalars() -> None:
    body = {"a": 1}
    assert MaskData().mask_body(None, ["a"]) is None
    assert MaskData().mask_body(body, None) is body
    assert MaskData().mask_body(body, []) == {"a": 1}
    assert MaskData().mask_body("str", ["a"]) == "str"
