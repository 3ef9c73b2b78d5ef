"""Body capture and encoding: JSON when it is a JSON object/array, base64 otherwise, capped, never raising."""

from __future__ import annotations

import base64
from array import array

from hypothesis import given
from hypothesis import strategies as st

from moesif_core.body import BodyTap, encode_body


def test_json_object_and_array_go_as_json() -> None:
    assert encode_body(b'{"a": [1, 2]}') == ({"a": [1, 2]}, "json")
    assert encode_body(b"  [1]") == ([1], "json")


def test_everything_else_goes_base64() -> None:
    for raw in (b"a=1&b=2", b"hello", b'{"broken": ', b"\xff\xfe\x00binary", b"42", b'"str"'):
        body, enc = encode_body(raw)
        assert enc == "base64"
        assert base64.b64decode(body) == raw


def test_no_body_is_null() -> None:
    assert encode_body(b"") == (None, None)
    assert encode_body(None) == (None, None)


def test_truncated_json_is_not_parsed() -> None:
    _body, enc = encode_body(b'{"a": 1}', truncated=True)
    assert enc == "base64"


def test_deeply_nested_json_does_not_raise() -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    _body, enc = encode_body(raw)
    assert enc in ("json", "base64")


def test_tap_keeps_at_most_the_cap_and_counts_the_rest() -> None:
    tap = BodyTap(10)
    for _ in range(1000):
        tap.feed(b"0123456789abcdef")
    assert tap.data() == b"0123456789"
    assert tap.kept == 10
    assert tap.total == 16_000
    assert tap.truncated


def test_tap_under_cap_is_whole() -> None:
    tap = BodyTap(100)
    tap.feed(b"ab")
    tap.feed(b"")
    tap.feed(b"cd")
    assert tap.data() == b"abcd"
    assert not tap.truncated


def test_tap_counts_bytes_of_a_view_of_wider_items() -> None:
    wide = memoryview(array("H", range(8)))  # 16 bytes, 8 items: what a handler may write to a stream
    tap = BodyTap(10)
    tap.feed(wide)  # type: ignore[arg-type]
    assert tap.data() == wide.tobytes()[:10]
    assert (tap.total, tap.kept, tap.truncated) == (16, 10, True)


@given(st.lists(st.binary(max_size=50), max_size=20), st.integers(min_value=0, max_value=200))
def test_tap_is_a_prefix_of_what_passed(chunks: list[bytes], limit: int) -> None:
    tap = BodyTap(limit)
    for c in chunks:
        tap.feed(c)
    whole = b"".join(chunks)
    assert tap.data() == whole[:limit]
    assert tap.total == len(whole)
    assert tap.truncated == (len(whole) > limit)


@given(st.binary(max_size=2000))
def test_any_bytes_encode_and_round_trip(raw: bytes) -> None:
    body, enc = encode_body(raw)
    if not raw:
        assert (body, enc) == (None, None)
    elif enc == "base64":
        assert base64.b64decode(body) == raw
    else:
        assert enc == "json" and isinstance(body, (dict, list))


def test_escaped_lone_surrogate_goes_base64_and_pairs_stay_json() -> None:
    assert encode_body(b'{"a": "\\ud800"}')[1] == "base64"  # valid JSON, but no UTF-8 can carry it
    assert encode_body(b'{"a": "\\ud83d\\ude00"}') == ({"a": "\U0001f600"}, "json")
