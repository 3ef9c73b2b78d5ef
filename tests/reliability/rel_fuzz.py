"""Generated bad input for the fuzz tests: raw bytes in paths, query strings, headers and bodies, broken auth,
malformed JSON under a JSON content type, and user callbacks that raise or return the wrong types."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Dict, Optional

from hypothesis import strategies as st
from rel_support import strict_json

from moesif_core.build import MASK_FAILED_METADATA_KEY

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "application/vnd.api+json",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zz",
    "application/json;;;=",
    "\xe9/\xff",
]


@dataclass
class Req:
    method: str
    path: bytes  # after the leading "/"
    query: bytes
    odd: str  # an X-Odd header value (latin-1 range: what HTTP/1.1 can carry)
    auth: Optional[str]
    content_type: Optional[str]
    body: bytes


latin1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)
b64 = st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())
jwt_part = st.one_of(b64, latin1, st.sampled_from(["", "e30", "eyJzdWIiOjF9", "eyJzdWIiOnsiYSI6W119fQ", "!!!"]))
auth = st.one_of(
    st.none(),
    st.builds(lambda a, b, c: f"Bearer {a}.{b}.{c}", jwt_part, jwt_part, jwt_part),
    st.builds(lambda a: f"Bearer {a}", latin1),
    st.builds(lambda a: f"Basic {a}", st.one_of(b64, latin1)),
    st.builds(lambda a: "Basic " + base64.b64encode(a).decode(), st.binary(max_size=30)),  # no colon, bad UTF-8
    latin1,
)
malformed_json = st.one_of(
    st.sampled_from(
        [
            b"{",
            b'{"a": ',
            b"[1, 2",
            b'{"a": NaN}',
            b'{"a": 1e999999}',
            b"\xff\xfe{}",
            b'"\xed\xa0\x80"',
            b"[" * 5000,
            b"null",
            b"",
            b"  ",
            b"{}extra",
        ]
    ),
    st.text(max_size=60).map(lambda s: ('{"k": "' + s).encode("utf-8", "surrogatepass")),
)
bodies = st.one_of(st.binary(max_size=400), malformed_json)
odd = st.one_of(latin1, st.just("h" * 16384))  # a 16 KiB header sometimes

requests_ = st.builds(
    Req,
    method=st.sampled_from(METHODS),
    path=st.binary(max_size=30),
    query=st.binary(max_size=40),
    odd=odd,
    auth=auth,
    content_type=st.sampled_from(CONTENT_TYPES),
    body=bodies,
)


class Wrong:
    """Neither JSON-serialisable nor a string."""


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("user callback failed")


#: The callback settings each fuzz test runs under (built once: one middleware, one agent each).
CALLBACKS: Dict[str, Dict[str, Any]] = {
    "none": {},
    "raising": {
        "IDENTIFY_USER": _raise,
        "IDENTIFY_COMPANY": _raise,
        "GET_SESSION_TOKEN": _raise,
        "GET_METADATA": _raise,
        "SKIP": _raise,
        "MASK_EVENT_MODEL": _raise,
    },
    "wrong_types": {
        "IDENTIFY_USER": lambda *a, **k: 42,
        "IDENTIFY_COMPANY": lambda *a, **k: {"x": Wrong()},
        "GET_SESSION_TOKEN": lambda *a, **k: b"\xff\xfe",
        "GET_METADATA": lambda *a, **k: Wrong(),
        "SKIP": lambda *a, **k: [],
        "MASK_EVENT_MODEL": lambda *a, **k: 5,
    },
}
# (SKIP returning [] is falsy: the events are kept, so the other wrong values reach the worker)


def check_event(event: Optional[Dict[str, Any]], *, status: int, method: str, tid: Optional[str], config: str) -> None:
    """What a flushed event must look like: strict JSON, the status and verb the client saw, the transaction id."""
    assert event is not None
    wire = strict_json(event)
    assert wire["response"]["status"] == status
    assert wire["request"]["verb"] == method
    if tid is not None:
        assert wire["transaction_id"] == tid
    for key in ("user_id", "company_id", "session_token"):
        assert wire[key] is None or isinstance(wire[key], str), (key, wire[key])
    assert wire["metadata"] is None or isinstance(wire["metadata"], dict)
    if config == "raising":  # MASK_EVENT_MODEL raised: sent without bodies and flagged
        assert wire["request"]["body"] is None and wire["response"]["body"] is None
        assert wire["metadata"] == {MASK_FAILED_METADATA_KEY: True}
