"""Unit level: the response tap keeps exactly the first ``MAX_BODY_SIZE`` bytes and passes every chunk on
unchanged; ``log_event`` survives handlers it does not expect."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from moesiftornado import MoesifMiddleware
from moesiftornado import middleware as middleware_module


@pytest.fixture
def offline() -> Iterator[MoesifMiddleware]:
    """A middleware whose captures are recorded in ``mw.captured`` instead of being queued (these tests look at
    what is captured; nothing listens at its BASE_URI)."""
    mw = MoesifMiddleware({"APPLICATION_ID": "unit", "BASE_URI": "http://127.0.0.1:9"})
    captured: list[Any] = []
    mw.captured = captured  # type: ignore[attr-defined]
    mw.agent.capture = captured.append  # type: ignore[method-assign,assignment]
    yield mw
    mw.shutdown(0)


def make_tap(mw: MoesifMiddleware, request_headers: dict[str, str] | None = None) -> Any:
    start = RequestStartLine("GET", "/", "HTTP/1.1")
    request = HTTPServerRequest(start_line=start, headers=HTTPHeaders({"Host": "h", **(request_headers or {})}))
    return mw._tap_class(request)


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=12), limit=st.integers(min_value=0, max_value=1500))
def test_tap_keeps_a_prefix_up_to_the_cap(chunks: list[bytes], limit: int) -> None:
    tap_class = type(
        "Tap",
        (middleware_module.ResponseTap,),
        {"__slots__": (), "limit": limit, "log_body": True, "add_transaction_id": True},
    )
    start = RequestStartLine("GET", "/", "HTTP/1.1")
    tap = tap_class(HTTPServerRequest(start_line=start, headers=HTTPHeaders({"Host": "h"})))
    headers = HTTPHeaders({"Content-Type": "text/plain"})
    first, *rest = chunks or [b""]
    status, out_headers, out = tap.transform_first_chunk(200, headers, first, not rest)
    assert (status, out_headers, out) == (200, headers, first)
    for i, chunk in enumerate(rest):
        assert tap.transform_chunk(chunk, i == len(rest) - 1) is chunk
    whole = b"".join(chunks)
    assert tap.body.data() == whole[:limit]
    assert tap.body.total == len(whole)
    assert tap.body.truncated == (len(whole) > limit)
    assert headers["X-Moesif-Transaction-Id"] == tap.transaction_id


def test_tap_without_body_logging_keeps_nothing() -> None:
    mw = MoesifMiddleware(
        {"APPLICATION_ID": "unit", "BASE_URI": "http://127.0.0.1:9", "LOG_BODY": False, "DISABLED_TRANSACTION_ID": True}
    )
    mw.shutdown(0)
    tap = make_tap(mw, {"X-Moesif-Transaction-Id": "given"})
    headers = HTTPHeaders()
    tap.transform_first_chunk(200, headers, b"secret", False)
    tap.transform_chunk(b"more", True)
    assert tap.body is None and tap.transaction_id is None
    assert "X-Moesif-Transaction-Id" not in headers


def test_tap_reuses_a_clients_transaction_id(offline: MoesifMiddleware) -> None:
    tap = make_tap(offline, {"X-Moesif-Transaction-Id": "req-1"})
    headers = HTTPHeaders()
    tap.transform_first_chunk(200, headers, b"", True)
    assert headers["X-Moesif-Transaction-Id"] == tap.transaction_id == "req-1"


class OddHandler:
    """Not a RequestHandler: what a broken subclass or another library might hand to ``log_function``."""

    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)

    def get_status(self) -> int:
        return 200


def test_log_event_never_raises(offline: MoesifMiddleware, moesif_log: pytest.LogCaptureFixture) -> None:
    offline.log_event(OddHandler())  # type: ignore[arg-type]  # no request at all
    offline.log_event(None)  # type: ignore[arg-type]
    start = RequestStartLine("POST", "/x", "HTTP/1.1")
    request = HTTPServerRequest(start_line=start, headers=HTTPHeaders({"Host": "h"}), body=b'{"a": 1}')
    odd = OddHandler(request=request, _request_summary=lambda: "POST /x")  # no _headers, no app
    offline.log_event(odd)  # type: ignore[arg-type]
    (raw,) = offline.captured  # type: ignore[attr-defined]
    assert raw.method == "POST" and raw.uri == "http://h/x" and raw.response_headers == ()
    assert raw.request_body.data() == b'{"a": 1}'
    assert raw.response_body is None and raw.transaction_id
    assert any(
        r.levelno == logging.WARNING and "capturing a Tornado request" in r.getMessage() for r in moesif_log.records
    )
