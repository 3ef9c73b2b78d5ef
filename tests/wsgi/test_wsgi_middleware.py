"""moesifwsgi called directly as a server would (no network): transparency, streaming, closing, errors, the
captured fields, the callbacks and the settings. The events are built with the real core builder."""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import Any, Dict, Iterator, List

import pytest
from wsgi_support import (
    BASIC_ALICE,
    JWT,
    UUID_RE,
    Captured,
    StartResponse,
    b64,
    call_wsgi,
    environ_for,
)

from moesif_core import TRUNCATED_METADATA_KEY
from moesifwsgi import MoesifMiddleware

BASE = {"APPLICATION_ID": "unit-app", "BASE_URI": "http://127.0.0.1:9"}


@pytest.fixture
def make() -> Iterator[Any]:
    """``make(app, **settings)`` -> (middleware, Captured); every middleware is shut down after the test."""
    made: List[MoesifMiddleware] = []

    def _make(app: Any, **settings: Any) -> Any:
        mw = MoesifMiddleware(app, {**BASE, **settings})
        made.append(mw)
        return mw, Captured(mw)

    yield _make
    for mw in made:
        mw.shutdown(0)


def json_app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    body = environ["wsgi.input"].read()
    out = b'{"len": %d, "token": "t0k"}' % len(body)
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


class Closing:
    """An iterable with close(), like werkzeug's ClosingIterator."""

    def __init__(self, chunks: List[bytes]) -> None:
        self.chunks = chunks
        self.closed = 0
        self.iterated = 0

    def __iter__(self) -> Iterator[bytes]:
        for c in self.chunks:
            self.iterated += 1
            yield c

    def close(self) -> None:
        self.closed += 1


# -- the captured event ----------------------------------------------------------------------------------------------


def test_json_post_fields(make: Any) -> None:
    mw, cap = make(json_app)
    body = b'{"name": "x", "password": "secret"}'
    env = environ_for(
        "POST",
        "/echo",
        "a=1&b=two",
        body,
        {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {JWT}",
            "X-Forwarded-For": "unknown, 10.0.0.1, 203.0.113.7",
            "X-Case": "v",
        },
    )
    sr, chunks = call_wsgi(mw, env)
    assert sr.status == "200 OK"
    assert chunks == [b'{"len": 35, "token": "t0k"}']
    e = cap.event()
    tx = dict(sr.headers)["X-Moesif-Transaction-Id"]
    assert UUID_RE.match(tx)
    assert e["transaction_id"] == tx
    req, resp = e["request"], e["response"]
    assert req["uri"] == "http://api.example.com/echo?a=1&b=two"
    assert req["verb"] == "POST"
    assert req["ip_address"] == "10.0.0.1"
    assert req["headers"] == {
        "Host": "api.example.com",
        "Content-Type": "application/json",
        "Content-Length": "35",
        "Authorization": f"Bearer {JWT}",
        "X-Forwarded-For": "unknown, 10.0.0.1, 203.0.113.7",
        "X-Case": "v",
        "X-Moesif-Transaction-Id": tx,
    }
    assert req["body"] == {"name": "x", "password": "secret"}
    assert req["transfer_encoding"] == "json"
    assert resp["status"] == 200
    assert resp["headers"] == {
        "Content-Type": "application/json",
        "Content-Length": "27",
        "X-Moesif-Transaction-Id": tx,
    }
    assert resp["body"] == {"len": 35, "token": "t0k"}
    assert resp["transfer_encoding"] == "json"
    assert e["user_id"] == "user-42"
    assert e["direction"] == "Incoming" and e["weight"] == 1 and e["metadata"] is None


def test_masks_and_basic_user(make: Any) -> None:
    mw, cap = make(
        json_app,
        REQUEST_BODY_MASKS=["password"],
        RESPONSE_BODY_MASKS=["token"],
        REQUEST_HEADER_MASKS=["authorization"],
        RESPONSE_HEADER_MASKS=["content-length"],
    )
    call_wsgi(
        mw, environ_for("POST", "/echo", body=b'{"user": {"Password": "p"}}', headers={"Authorization": BASIC_ALICE})
    )
    e = cap.event()
    assert e["user_id"] == "alice"
    assert e["request"]["body"] == {"user": {}}  # masks remove what they name
    assert "Authorization" not in e["request"]["headers"]
    assert "token" not in e["response"]["body"] and e["response"]["body"]["len"]
    assert "Content-Length" not in e["response"]["headers"]


def test_non_json_bodies_go_base64(make: Any) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<p>", b"hi</p>"]

    mw, cap = make(app)
    call_wsgi(
        mw,
        environ_for(
            "POST", "/form", body=b"name=al+ice&x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
        ),
    )
    e = cap.event()
    assert e["request"]["body"] == b64(b"name=al+ice&x=1") and e["request"]["transfer_encoding"] == "base64"
    assert e["response"]["body"] == b64(b"<p>hi</p>") and e["response"]["transfer_encoding"] == "base64"


def test_no_body_is_null_and_head_has_no_response_body(make: Any) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"framework wrote a body anyway"]

    mw, cap = make(app)
    call_wsgi(mw, environ_for("HEAD", "/x"))
    call_wsgi(mw, environ_for("GET", "/x"))
    head, get = cap.events()
    assert head["request"]["verb"] == "HEAD"
    assert head["request"]["body"] is None and head["request"]["transfer_encoding"] is None
    assert head["response"]["body"] is None and head["response"]["transfer_encoding"] is None
    assert get["response"]["body"] == b64(b"framework wrote a body anyway")


def test_log_body_false_reads_and_keeps_nothing(make: Any) -> None:
    mw, cap = make(json_app, LOG_BODY=False)
    env = environ_for("POST", "/echo", body=b'{"a": 1}')
    stream = env["wsgi.input"]
    _sr, _chunks = call_wsgi(mw, env)
    assert env["wsgi.input"] is stream  # not even wrapped
    e = cap.event()
    assert e["request"]["body"] is None and e["response"]["body"] is None
    assert cap.raws[0].request_body is None and cap.raws[0].response_body is None


# -- transparency ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["read", "read_n", "readline", "readlines", "iter", "readinto", "read_none"])
def test_app_reads_input_its_own_way(make: Any, style: str) -> None:
    body = b"line one\nline two\n" + bytes(range(256)) * 40 + b"\nlast"
    seen: List[bytes] = []

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        stream = environ["wsgi.input"]
        if style == "read":
            seen.append(stream.read())
        elif style == "read_none":
            seen.append(stream.read(None) if isinstance(stream.stream, io.BytesIO) else stream.read())
        elif style == "read_n":
            while True:
                data = stream.read(7)
                if not data:
                    break
                seen.append(data)
        elif style == "readline":
            while True:
                line = stream.readline()
                if not line:
                    break
                seen.append(line)
        elif style == "readlines":
            seen.extend(stream.readlines())
        elif style == "iter":
            seen.extend(stream)
        elif style == "readinto":
            buf = bytearray(100)
            while True:
                n = stream.readinto(buf)
                if not n:
                    break
                seen.append(bytes(buf[:n]))
        start_response("200 OK", [])
        return [b"ok"]

    mw, cap = make(app)
    call_wsgi(mw, environ_for("POST", "/", body=body))
    assert b"".join(seen) == body
    assert cap.raws[0].request_body.data() == body
    assert cap.event()["request"]["body"] == b64(body)


def test_readinto_without_server_readinto(make: Any) -> None:
    class NoReadinto:
        def __init__(self, data: bytes) -> None:
            self.inner = io.BytesIO(data)

        def read(self, *args: Any) -> bytes:
            return self.inner.read(*args)

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        buf = bytearray(4)
        n = environ["wsgi.input"].readinto(buf)
        start_response("200 OK", [])
        return [bytes(buf[:n])]

    mw, cap = make(app)
    env = environ_for("POST", "/", body=b"abcdef")
    env["wsgi.input"] = NoReadinto(b"abcdef")
    _, chunks = call_wsgi(mw, env)
    assert chunks == [b"abcd"]
    assert cap.event()["request"]["body"] == b64(b"abcdef")  # the unread rest is read at the end (fits the cap)


def test_unread_small_body_is_read_at_the_end_and_large_one_is_not(make: Any) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"nope"]

    mw, cap = make(app, MAX_BODY_SIZE=1000)
    call_wsgi(mw, environ_for("POST", "/missing", body=b'{"a": 1}'))
    big = environ_for("POST", "/missing", body=b"x" * 5000)
    call_wsgi(mw, big)
    small_event, big_event = cap.events()
    assert small_event["request"]["body"] == {"a": 1}
    assert big_event["request"]["body"] is None
    assert big_event["metadata"] == {TRUNCATED_METADATA_KEY: {"request": 5000}}
    assert big["wsgi.input"].stream.tell() == 0  # the middleware did not read an over-cap body the app ignored


def test_over_cap_bodies_are_truncated_not_held(make: Any) -> None:
    body = b'{"k": "' + b"v" * 3000 + b'"}'

    def app(environ: Dict[str, Any], start_response: Any) -> Iterator[bytes]:
        assert environ["wsgi.input"].read() == body
        start_response("200 OK", [("Content-Type", "application/json")])
        for _ in range(10):
            yield b"[" + b"1," * 500 + b"1]"

    mw, cap = make(app, MAX_BODY_SIZE=1024)
    _, chunks = call_wsgi(mw, environ_for("POST", "/", body=body))
    assert len(b"".join(chunks)) == 10 * 1003
    raw = cap.raws[0]
    assert raw.request_body.kept == 1024 and raw.response_body.kept == 1024
    e = cap.event()
    assert e["request"]["transfer_encoding"] == "base64" and e["request"]["body"] == b64(body[:1024])
    assert e["response"]["body"] == b64(b"".join(chunks)[:1024])
    assert e["metadata"] == {TRUNCATED_METADATA_KEY: {"request": len(body), "response": 10 * 1003}}


def test_app_header_list_is_not_modified_and_write_is_teed(make: Any) -> None:
    headers = [("Content-Type", "text/plain")]

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        write = start_response("200 OK", headers)
        write(b"via write, ")
        return [b"then iterable"]

    mw, cap = make(app)
    sr, chunks = call_wsgi(mw, environ_for())
    assert headers == [("Content-Type", "text/plain")]
    assert sr.headers[:-1] == headers and sr.headers[-1][0] == "X-Moesif-Transaction-Id"
    assert sr.written == [b"via write, "] and chunks == [b"then iterable"]
    assert cap.event()["response"]["body"] == b64(b"via write, then iterable")


def test_list_result_is_handed_back_as_is(make: Any) -> None:
    result = [b"one"]

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("200 OK", [])
        return result

    mw, cap = make(app)
    assert mw(environ_for(), StartResponse()) is result  # so a server can still set Content-Length from it
    assert len(cap.raws) == 1


def test_generator_streams_lazily_and_event_comes_at_the_end(make: Any) -> None:
    produced: List[int] = []

    def app(environ: Dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])  # called lazily, at first next
        for i in range(3):
            produced.append(i)
            yield b"%d" % i

    mw, cap = make(app)
    sr = StartResponse()
    result = mw(environ_for(), sr)
    assert produced == [] and sr.calls == []
    it = iter(result)
    assert next(it) == b"0" and produced == [0]
    assert cap.raws == []  # nothing emitted mid-stream
    assert list(it) == [b"1", b"2"]
    assert len(cap.raws) == 1
    result.close()
    assert len(cap.raws) == 1
    e = cap.event()
    assert e["response"]["status"] == 200 and e["response"]["body"] == b64(b"012")


def test_close_is_always_called(make: Any) -> None:
    results: List[Closing] = []

    def app(environ: Dict[str, Any], start_response: Any) -> Closing:
        start_response("200 OK", [])
        results.append(Closing([b"a", b"b", b"c"]))
        return results[-1]

    mw, cap = make(app)
    call_wsgi(mw, environ_for())  # fully iterated
    r = mw(environ_for(), StartResponse())  # the server gives up before iterating (client gone)
    r.close()
    r = mw(environ_for(), StartResponse())  # ... or after one chunk
    next(iter(r))
    r.close()
    assert [x.closed for x in results] == [1, 1, 1]
    assert [x.iterated for x in results] == [3, 0, 1]
    assert [e["response"]["body"] for e in cap.events()] == [b64(b"abc"), None, b64(b"a")]


def test_file_wrapper_responses_work(make: Any) -> None:
    from wsgiref.util import FileWrapper

    data = bytes(range(256)) * 100

    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(data), 1000)

    mw, cap = make(app, MAX_BODY_SIZE=100)
    env = environ_for()
    env["wsgi.file_wrapper"] = FileWrapper
    _, chunks = call_wsgi(mw, env)
    assert b"".join(chunks) == data and len(chunks) == 26
    assert cap.event()["response"]["body"] == b64(data[:100])


def test_exception_from_app_call_propagates_unchanged_after_a_500_event(make: Any) -> None:
    error = RuntimeError("boom")

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        raise error

    mw, cap = make(app)
    with pytest.raises(RuntimeError) as info:
        mw(environ_for("POST", "/boom", body=b'{"a": 1}'), StartResponse())
    assert info.value is error
    e = cap.event()
    assert e["response"]["status"] == 500
    assert e["request"]["body"] == {"a": 1}  # the unread request body still shows


def test_exception_while_iterating_propagates_after_a_500_event_and_close(make: Any) -> None:
    closed: List[bool] = []

    class Failing:
        def __iter__(self) -> Iterator[bytes]:
            yield b"partial"
            raise ValueError("mid-stream")

        def close(self) -> None:
            closed.append(True)

    def app(environ: Dict[str, Any], start_response: Any) -> Failing:
        start_response("200 OK", [])
        return Failing()

    mw, cap = make(app)
    with pytest.raises(ValueError, match="mid-stream"):
        call_wsgi(mw, environ_for())
    assert closed == [True]
    e = cap.event()
    assert e["response"]["status"] == 500 and e["response"]["body"] == b64(b"partial")


def test_exc_info_start_response_is_passed_on(make: Any) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("200 OK", [])
        try:
            raise KeyError("x")
        except KeyError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"error page"]

    mw, cap = make(app)
    sr, _ = call_wsgi(mw, environ_for())
    assert len(sr.calls) == 2 and sr.calls[1][2][0] is KeyError
    assert cap.event()["response"]["status"] == 500


# -- request facts ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "uri"),
    [
        ({}, "http://api.example.com/p/a%20b?q=1"),
        ({"HTTP_HOST": "", "SERVER_NAME": "srv", "SERVER_PORT": "8080"}, "http://srv:8080/p/a%20b?q=1"),
        (
            {"HTTP_HOST": "", "SERVER_NAME": "srv", "SERVER_PORT": "443", "wsgi.url_scheme": "https"},
            "https://srv/p/a%20b?q=1",
        ),
        ({"SCRIPT_NAME": "/mount"}, "http://api.example.com/mount/p/a%20b?q=1"),
        ({"PATH_INFO": "/caf\xc3\xa9"}, "http://api.example.com/caf%C3%A9?q=1"),  # UTF-8 bytes, latin-1 decoded
        ({"PATH_INFO": "/caf\xe9/\xff"}, "http://api.example.com/caf%E9/%FF?q=1"),  # not UTF-8
        ({"PATH_INFO": "/100%/x?y#z"}, "http://api.example.com/100%25/x%3Fy%23z?q=1"),
        ({"QUERY_STRING": "a=\xe9&b=c d"}, "http://api.example.com/p/a%20b?a=%E9&b=c%20d"),
        ({"PATH_INFO": "", "QUERY_STRING": ""}, "http://api.example.com/"),
    ],
)
def test_uri(make: Any, extra: Dict[str, str], uri: str) -> None:
    mw, cap = make(json_app)
    call_wsgi(mw, environ_for("GET", "/p/a b", "q=1", **extra))
    assert cap.event()["request"]["uri"] == uri


def test_missing_remote_addr_and_ipv6(make: Any) -> None:
    mw, cap = make(json_app)
    env = environ_for()
    del env["REMOTE_ADDR"]
    call_wsgi(mw, env)
    call_wsgi(mw, environ_for(REMOTE_ADDR="2001:db8::1"))
    call_wsgi(mw, environ_for(headers={"X-Forwarded-For": "[2001:db8::7]:443, 10.0.0.1"}))
    assert [e["request"]["ip_address"] for e in cap.events()] == [None, "2001:db8::1", "2001:db8::7"]


def test_cgi_authorization_counts_as_authorization(make: Any) -> None:
    mw, cap = make(json_app)
    call_wsgi(mw, environ_for(headers={"Cgi-Authorization": BASIC_ALICE}))
    e = cap.event()
    assert e["user_id"] == "alice" and e["request"]["headers"]["Authorization"] == BASIC_ALICE


def test_non_utf8_header_values(make: Any) -> None:
    mw, cap = make(json_app)
    call_wsgi(mw, environ_for(headers={"X-Utf8": "caf\xc3\xa9", "X-Latin": "caf\xe9\xff"}))
    headers = cap.event()["request"]["headers"]
    assert headers["X-Utf8"] == "café"
    assert headers["X-Latin"] == "caf\xe9\xff"


def test_transaction_id_reuse_and_disable(make: Any) -> None:
    mw, cap = make(json_app)
    sr1, _ = call_wsgi(mw, environ_for(headers={"X-Moesif-Transaction-Id": "upstream-id-1"}))
    sr2, _ = call_wsgi(mw, environ_for(headers={"X-Moesif-Transaction-Id": "bad id\t<script>"}))
    e1, e2 = cap.events()
    assert dict(sr1.headers)["X-Moesif-Transaction-Id"] == "upstream-id-1" == e1["transaction_id"]
    tx2 = dict(sr2.headers)["X-Moesif-Transaction-Id"]
    assert UUID_RE.match(tx2) and e2["transaction_id"] == tx2
    assert e2["request"]["headers"]["X-Moesif-Transaction-Id"] == tx2

    mw, cap = make(json_app, DISABLED_TRANSACTION_ID=True)
    sr, _ = call_wsgi(mw, environ_for())
    assert "X-Moesif-Transaction-Id" not in dict(sr.headers)
    e = cap.event()
    assert UUID_RE.match(e["transaction_id"]) and "X-Moesif-Transaction-Id" not in e["request"]["headers"]


# -- callbacks ---------------------------------------------------------------------------------------------------------


def test_readme_callbacks(make: Any) -> None:
    seen: Dict[str, Any] = {}

    def identify_user(app: Any, environ: Dict[str, Any], response_headers: Dict[str, str] = dict()) -> str:  # noqa: B006
        seen["app"] = app
        seen["response_headers"] = response_headers
        seen["request_body"] = environ["moesif.request_body"]
        seen["chunks"] = environ["moesif.response_body_chunks"]
        seen["env_headers"] = environ["moesif.response_headers"]
        return "12345"

    def identify_company(app: Any, environ: Dict[str, Any], response_headers: Dict[str, str] = dict()) -> str:  # noqa: B006
        return "67890"

    def get_token(app: Any, environ: Dict[str, Any]) -> str:
        return "XXXXXXXXXXXXXX"

    def get_metadata(app: Any, environ: Dict[str, Any]) -> Dict[str, Any]:
        return {"datacenter": "westus", "deployment_version": "v1.2.3"}

    def should_skip(app: Any, environ: Dict[str, Any]) -> bool:
        return "health/probe" in environ.get("PATH_INFO", "")

    def mask_event(eventmodel: Any) -> Any:
        if "token" in eventmodel.response.body:
            eventmodel.response.body["token"] = None
        return eventmodel

    mw, cap = make(
        json_app,
        IDENTIFY_USER=identify_user,
        IDENTIFY_COMPANY=identify_company,
        GET_SESSION_TOKEN=get_token,
        GET_METADATA=get_metadata,
        SKIP=should_skip,
        MASK_EVENT_MODEL=mask_event,
        DEBUG=False,
        LOG_BODY=True,
        CAPTURE_OUTGOING_REQUESTS=False,
    )
    call_wsgi(mw, environ_for("POST", "/echo", body=b'{"user": "u"}'))
    call_wsgi(mw, environ_for("GET", "/health/probe"))
    e = cap.event()
    assert e["user_id"] == "12345" and e["company_id"] == "67890" and e["session_token"] == "XXXXXXXXXXXXXX"
    assert e["metadata"] == {"datacenter": "westus", "deployment_version": "v1.2.3"}
    assert e["response"]["body"] == {"len": 13, "token": None}
    assert seen["app"] is json_app
    assert seen["request_body"] == {"user": "u"}
    assert seen["chunks"] == [b'{"len": 13, "token": "t0k"}']
    tx = e["transaction_id"]
    assert (
        seen["response_headers"]
        == seen["env_headers"]
        == {"Content-Type": "application/json", "Content-Length": "27", "X-Moesif-Transaction-Id": tx}
    )


def test_guide_two_argument_callbacks(make: Any) -> None:
    def identify_user(app: Any, environ: Dict[str, Any]) -> str:
        return "user_id_1"

    def identify_company(app: Any, environ: Dict[str, Any]) -> str:
        return "co"

    mw, cap = make(json_app, IDENTIFY_USER=identify_user, IDENTIFY_COMPANY=identify_company)
    call_wsgi(mw, environ_for())
    e = cap.event()
    assert (e["user_id"], e["company_id"]) == ("user_id_1", "co")


def test_request_body_environ_key_is_base64_for_non_json(make: Any) -> None:
    bodies: List[Any] = []
    mw, _cap = make(json_app, GET_METADATA=lambda app, environ: bodies.append(environ["moesif.request_body"]))
    call_wsgi(mw, environ_for("POST", "/", body=b"a=1"))
    call_wsgi(mw, environ_for("GET", "/"))
    assert bodies == [b64(b"a=1"), None]


def test_failing_callbacks_never_fail_the_request(make: Any, moesif_log: pytest.LogCaptureFixture) -> None:
    def boom(*args: Any) -> Any:
        raise ValueError("user bug")

    mw, cap = make(
        json_app, IDENTIFY_USER=boom, IDENTIFY_COMPANY=boom, GET_METADATA=boom, GET_SESSION_TOKEN=boom, SKIP=boom
    )
    sr, chunks = call_wsgi(mw, environ_for(headers={"Authorization": BASIC_ALICE}))
    assert sr.status == "200 OK" and chunks
    e = cap.event()
    assert e["user_id"] == "alice"  # falls back to the authorization header
    assert e["company_id"] is None and e["metadata"] is None and e["session_token"] is None
    for name in ("IDENTIFY_USER", "IDENTIFY_COMPANY", "GET_METADATA", "GET_SESSION_TOKEN", "SKIP"):
        assert any(name in r.getMessage() for r in moesif_log.records), name


def test_slow_callback_is_logged_once(
    make: Any, moesif_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moesifwsgi.options as options

    monkeypatch.setattr(options, "SLOW_CALLBACK_SECONDS", 0.0)
    mw, cap = make(json_app, GET_SESSION_TOKEN=lambda app, environ: "tok")
    call_wsgi(mw, environ_for())
    call_wsgi(mw, environ_for())
    slow = [r for r in moesif_log.records if "GET_SESSION_TOKEN callback took" in r.getMessage()]
    assert len(slow) == 1
    assert [e["session_token"] for e in cap.events()] == ["tok", "tok"]


def test_callbacks_not_configured_leave_environ_alone(make: Any) -> None:
    mw, _cap = make(json_app)
    env = environ_for()
    call_wsgi(mw, env)
    assert not [k for k in env if k.startswith("moesif.")]


def test_internal_error_never_reaches_the_app(make: Any, moesif_log: pytest.LogCaptureFixture) -> None:
    mw, _cap = make(json_app)

    def broken(raw: Any) -> bool:
        raise RuntimeError("sdk bug")

    mw.agent.capture = broken
    sr, chunks = call_wsgi(mw, environ_for())
    assert sr.status == "200 OK" and chunks
    assert any("request is not affected" in r.getMessage() for r in moesif_log.records)


# -- settings, profiles, outgoing -------------------------------------------------------------------------------------


def test_settings_are_validated_with_wsgi_defaults() -> None:
    with pytest.raises(ValueError, match="APPLICATION_ID"):
        MoesifMiddleware(json_app, {})
    with pytest.raises(ValueError, match=r"LOG_BODDY.*LOG_BODY"):
        MoesifMiddleware(json_app, {**BASE, "LOG_BODDY": True})
    with pytest.raises(TypeError, match="IDENTIFY_USER"):
        MoesifMiddleware(json_app, {**BASE, "IDENTIFY_USER": "not callable"})
    mw = MoesifMiddleware(json_app, BASE)
    try:
        assert mw.options.batch_size == 100 and mw.options.event_batch_timeout == 2
        assert mw.options.event_worker_count == 2 and mw.options.event_queue_size == 1_000_000
        assert mw.client.user_agent.startswith("moesifwsgi-python/")
        assert mw.settings is not None and mw.app is json_app
    finally:
        mw.shutdown(0)


def test_capture_outgoing_requests_starts_once_with_the_middlewares_agent() -> None:
    import moesifpythonrequest

    moesifpythonrequest.stop()
    settings = {**BASE, "CAPTURE_OUTGOING_REQUESTS": True, "SKIP_OUTGOING": lambda req, res: False}
    mws = [MoesifMiddleware(json_app, settings), MoesifMiddleware(json_app, settings)]
    try:
        assert moesifpythonrequest.is_active()
        assert moesifpythonrequest.get_agent() is mws[0].agent  # outgoing events share the first one's queue
    finally:
        moesifpythonrequest.stop()
        for mw in mws:
            mw.shutdown(0)


def test_capture_outgoing_without_the_package_only_warns(
    monkeypatch: pytest.MonkeyPatch, moesif_log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "moesifpythonrequest", None)  # import fails
    mw = MoesifMiddleware(json_app, {**BASE, "CAPTURE_OUTGOING_REQUESTS": True})
    try:
        assert any("moesifpythonrequest" in r.getMessage() for r in moesif_log.records)
    finally:
        mw.shutdown(0)


def test_concurrent_requests_keep_their_own_state(make: Any) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> Iterator[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("X-Echo", body.decode())])
        yield body

    mw, cap = make(app)
    errors: List[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(50):
                payload = f"{i}-{j}".encode()
                sr, chunks = call_wsgi(mw, environ_for("POST", "/", body=payload))
                assert chunks == [payload] and dict(sr.headers)["X-Echo"] == payload.decode()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    events = cap.events()
    assert len(events) == 200
    for e in events:
        body = e["request"]["body"]
        assert (
            e["response"]["body"] == body
            and e["response"]["headers"]["X-Echo"] == __import__("base64").b64decode(body).decode()
        )


def test_logging_is_quiet_by_default(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="moesif")
    mw, _cap = make(json_app)
    call_wsgi(mw, environ_for())
    # (the dead BASE_URI of these tests makes the core's config fetch warn: that is not the middleware's doing)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "/v1/" not in r.getMessage()]
