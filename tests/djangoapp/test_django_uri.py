"""The event's URL and response headers, read the short way, are what Django's own methods give.

``request_uri`` skips ``request.scheme``/``_get_raw_host()``/``get_full_path()`` when it can tell they would change
nothing, and the recorder reads a response's headers from their store; each case here compares the two ways on real
Django requests and responses (WSGI and ASGI requests, settings changed between calls).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncRequestFactory, RequestFactory
from django.test.utils import override_settings

from moesifdjango.recorder import _plain_headers
from moesifdjango.requestinfo import request_uri

PATHS = ["/hello", "", "/a:b@c/&+$,-_.!~*'()/x", "/with space", "/caf\u00e9/\u2603", "/semi;colon=eq", "/x^|`{}\\"]
QUERIES = ["", "a=1&b=two", "q=/#%[]=:;$&()+,!?*@'~", "x=a b", "q=\u00e9", "percent=%41&quote=%22&lt=<>", "^|`{}\\"]

SETTINGS: list[dict[str, Any]] = [
    {},
    {"SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")},
    {"USE_X_FORWARDED_HOST": True},
    {"SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"), "USE_X_FORWARDED_HOST": True},
]

EXTRA_HEADERS: list[dict[str, str]] = [
    {},
    {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "proxy.example:8443"},
]


def _django_uri(request: HttpRequest) -> str:
    return f"{request.scheme}://{request._get_raw_host()}{request.get_full_path()}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("factory", [RequestFactory(), AsyncRequestFactory()], ids=["wsgi", "asgi"])
def test_request_uri_is_what_django_gives(factory: Any) -> None:
    seen = set()
    for overrides in SETTINGS:
        with override_settings(**overrides):
            for path, query, extra in itertools.product(PATHS, QUERIES, EXTRA_HEADERS):
                request = factory.get(path or "/", headers=extra)
                request.path = path  # as a server hands it over, unquoted (the factory would quote it)
                request.META["QUERY_STRING"] = query
                got = request_uri(request)
                assert got == _django_uri(request), (overrides, path, query, extra)
                seen.add(got)
    assert "http://testserver/hello?a=1&b=two" in seen
    assert "https://proxy.example:8443/hello" in seen  # both forwarded headers honoured when the settings say so
    assert "http://testserver/caf%C3%A9/%E2%98%83?q=%C3%A9" in seen
    assert "http://testserver/with%20space?x=a%20b" in seen


def test_request_uri_without_host_header_uses_server_name_and_port() -> None:
    request = RequestFactory().get("/hello", SERVER_NAME="backend", SERVER_PORT="8080")
    assert "HTTP_HOST" not in request.META
    assert request_uri(request) == _django_uri(request) == "http://backend:8080/hello"


def test_request_uri_follows_a_request_class_of_its_own() -> None:
    class Rewritten(type(RequestFactory().get("/"))):  # type: ignore[misc]
        def get_full_path(self, force_append_slash: bool = False) -> str:
            return "/rewritten"

    request = RequestFactory().get("/hello?a=1")
    request.__class__ = Rewritten
    assert request_uri(request) == "http://testserver/rewritten"


def test_request_uri_follows_settings_changed_at_run_time() -> None:
    request = RequestFactory().get("/hello", HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST="edge")
    assert request_uri(request) == "http://testserver/hello"
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"), USE_X_FORWARDED_HOST=True):
        assert request_uri(request) == "https://edge/hello"
    assert request_uri(request) == "http://testserver/hello"


class _OwnItems(HttpResponse):
    def items(self) -> Any:
        return [("X-Only", "this")]


def test_response_headers_read_from_the_store_are_its_items() -> None:
    for response in (HttpResponse("ok", headers={"X-A": "1"}), JsonResponse({"a": 1})):
        headers = _plain_headers(response)
        assert headers is not None
        response["Set-Cookie-Like"] = "v"
        assert list(headers._store.values()) == list(response.items())
    assert _plain_headers(_OwnItems("ok")) is None
