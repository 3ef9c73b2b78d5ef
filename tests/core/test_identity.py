"""User from authorization headers and client IP from forwarding headers: correct, and never raising."""

from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from moesif_core.identity import client_ip, user_from_authorization, user_from_headers


def jwt(payload: dict[str, object], pad: bool = False) -> str:
    def seg(obj: object) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()
        return raw if pad else raw.rstrip("=")

    return f"{seg({'alg': 'none'})}.{seg(payload)}.sig"


def test_bearer_jwt_gives_sub() -> None:
    assert user_from_authorization("Bearer " + jwt({"sub": "user-42"})) == "user-42"
    assert user_from_authorization("bearer " + jwt({"sub": "user-42"}, pad=True)) == "user-42"


def test_custom_field_and_dotted_path() -> None:
    token = "Bearer " + jwt({"sub": "s", "user": {"id": 7}, "https://x.io/uid": "u9"})
    assert user_from_authorization(token, "user.id") == "7"
    assert user_from_authorization(token, "https://x.io/uid") == "u9"
    assert user_from_authorization(token, "missing") is None
    assert user_from_authorization(token, "SUB") == "s"  # the originals lower-cased the field name


def test_url_safe_characters_in_payload() -> None:
    # a payload whose base64 contains '-' and '_' (url-safe alphabet)
    payload = {"sub": "ü?>>>~~~"}
    assert user_from_authorization("Bearer " + jwt(payload)) == "ü?>>>~~~"


def test_basic_gives_username() -> None:
    assert user_from_authorization("Basic " + base64.b64encode(b"alice:pw").decode()) == "alice"


def test_other_values_give_none() -> None:
    assert user_from_authorization("Token abc") is None
    assert user_from_authorization("Bearer not.a.jwt") is None
    assert user_from_authorization("Bearer") is None


def test_header_list_in_order() -> None:
    headers = {
        "x-api-key": "Bearer " + jwt({"sub": "from-key"}),
        "authorization": "Basic " + base64.b64encode(b"bob:x").decode(),
    }
    assert user_from_headers(headers, "X-Api-Key, Authorization") == "from-key"
    assert user_from_headers(headers, "Authorization,X-Api-Key") == "bob"
    assert user_from_headers({}, "authorization") is None


def test_ip_order_and_lists() -> None:
    assert client_ip({"x-forwarded-for": "unknown, 10.0.0.1, 203.0.113.7"}, "127.0.0.1") == "10.0.0.1"
    assert client_ip({"x-client-ip": "1.2.3.4", "x-forwarded-for": "5.6.7.8"}) == "1.2.3.4"
    assert client_ip({"x-real-ip": "garbage", "x-forwarded": "9.9.9.9"}) == "9.9.9.9"
    assert client_ip({}, "192.0.2.10") == "192.0.2.10"
    assert client_ip({}, None) is None


def test_ipv6_and_ports() -> None:
    assert client_ip({"x-forwarded-for": "2001:db8::1, 10.0.0.1"}) == "2001:db8::1"
    assert client_ip({"x-forwarded-for": "[2001:db8::2]:443"}) == "2001:db8::2"
    assert client_ip({"x-forwarded-for": "203.0.113.9:8080"}) == "203.0.113.9"
    assert client_ip({"forwarded": 'for="[2001:db8::3]:80";proto=https, for=1.1.1.1'}) == "2001:db8::3"
    assert client_ip({}, "::1") == "::1"
    assert client_ip({}, "::ffff:203.0.113.7") == "203.0.113.7"  # an IPv4 client on a dual-stack socket


@given(
    st.dictionaries(
        st.sampled_from(["authorization", "x-api-key", "x-forwarded-for", "forwarded", "x-real-ip"]),
        st.text(max_size=200),
    ),
    st.one_of(st.none(), st.text(max_size=50)),
)
def test_arbitrary_headers_never_raise(headers: dict[str, str], peer: str | None) -> None:
    user_from_headers(headers, "authorization,x-api-key")
    ip = client_ip(headers, peer)
    assert ip is None or isinstance(ip, str)


@given(st.text(max_size=300))
def test_arbitrary_tokens_never_raise(value: str) -> None:
    for prefix in ("", "Bearer ", "Basic "):
        result = user_from_authorization(prefix + value)
        assert result is None or isinstance(result, str)
