"""Events from a real Tornado server to the real collector, field by field against docs/wire.md."""

from __future__ import annotations

import base64
import gzip
import json
import time
from typing import Any

import requests
import tornado.web
from tornado_support import APP_ID, UUID_RE, check_shape, wait_for_requests

import moesiftornado
from moesiftornado import MoesifMiddleware


class MainHandler(tornado.web.RequestHandler):
    """The README's handler."""

    def get(self) -> None:
        self.write(json.dumps({"msg": "Hello, world"}))


class EchoHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        self.set_header("X-Case", "echo")
        self.write({"len": len(self.request.body)})

    def head(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(b'{"head": "never sent"}')


class TextHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.write(b"plain text, not json")


class BigJsonHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"items": [{"n": i, "name": f"item-{i}"} for i in range(200)]})


def test_readme_quickstart_event_field_by_field(collector: Any, serve: Any) -> None:
    middleware = MoesifMiddleware({"APPLICATION_ID": APP_ID, "LOG_BODY": True, "BASE_URI": collector.url})
    application = tornado.web.Application([(r"/", MainHandler)], log_function=middleware.log_event)
    server = serve(application)

    before = time.time()
    r = requests.get(server.url + "/?a=1&b=two", headers={"X-Case": "quickstart"})
    after = time.time()
    assert r.status_code == 200 and r.json() == {"msg": "Hello, world"}
    middleware.flush(5)  # BATCH_SIZE 25 / 2 s are the defaults here: flush rather than wait
    (event,) = collector.wait_for_events(1, timeout=10)
    check_shape(event, before, after)

    tid = r.headers["X-Moesif-Transaction-Id"]
    assert UUID_RE.match(tid)
    assert event["transaction_id"] == tid

    req = event["request"]
    assert req["uri"] == f"{server.url}/?a=1&b=two"
    assert req["verb"] == "GET"
    assert req["api_version"] is None
    assert req["ip_address"] == "127.0.0.1"
    assert req["headers"]["Host"] == f"127.0.0.1:{server.port}"
    assert req["headers"]["X-Case"] == "quickstart"
    assert req["headers"]["X-Moesif-Transaction-Id"] == tid
    assert req["body"] is None and req["transfer_encoding"] is None

    resp = event["response"]
    assert resp["status"] == 200
    # the headers as sent: compare with what the client received
    for name in ("Content-Type", "Content-Length", "Etag", "Server", "Date", "X-Moesif-Transaction-Id"):
        assert resp["headers"][name] == r.headers[name], name
    assert resp["body"] == {"msg": "Hello, world"}
    assert resp["transfer_encoding"] == "json"
    assert event["user_id"] is None and event["company_id"] is None and event["session_token"] is None
    assert event["metadata"] is None

    rows = wait_for_requests(collector, lambda row: row["path"] == "/v1/events/batch")
    assert rows, "the batch POST was not logged by the collector"
    assert rows[0]["user_agent"] == f"moesiftornado-python/{moesiftornado.__version__}"
    assert rows[0]["app_id"] == APP_ID
    assert rows[0]["content_encoding"] == "gzip"


def test_json_request_and_response_bodies(collector: Any, serve: Any, make_middleware: Any) -> None:
    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/echo", EchoHandler)], log_function=mw.log_event))
    payload = {"name": "x", "password": "secret", "list": [1, 2, 3]}
    r = requests.post(server.url + "/echo", json=payload)
    assert r.json() == {"len": len(r.request.body or b"")}
    (event,) = collector.wait_for_events(1)
    check_shape(event)
    assert event["request"]["body"] == payload
    assert event["request"]["transfer_encoding"] == "json"
    assert event["request"]["headers"]["Content-Type"] == "application/json"
    assert event["request"]["headers"]["Content-Length"] == str(len(r.request.body or b""))
    assert event["response"]["body"] == {"len": len(r.request.body or b"")}
    assert event["response"]["headers"]["Content-Type"] == "application/json; charset=UTF-8"
    assert event["response"]["headers"]["X-Case"] == "echo"


def test_non_json_bodies_go_base64(collector: Any, serve: Any, make_middleware: Any) -> None:
    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/text", TextHandler)], log_function=mw.log_event))
    requests.post(server.url + "/text", data={"a": "1", "b": "two"})  # a form
    requests.post(server.url + "/text", data=b'{"broken": ', headers={"Content-Type": "application/json"})
    form, broken = collector.wait_for_events(2)
    assert form["request"]["transfer_encoding"] == "base64"
    assert base64.b64decode(form["request"]["body"]) == b"a=1&b=two"
    assert broken["request"]["transfer_encoding"] == "base64"
    assert base64.b64decode(broken["request"]["body"]) == b'{"broken": '
    for event in (form, broken):
        assert event["response"]["transfer_encoding"] == "base64"
        assert base64.b64decode(event["response"]["body"]) == b"plain text, not json"


def test_head_response_has_no_body(collector: Any, serve: Any, make_middleware: Any) -> None:
    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/echo", EchoHandler)], log_function=mw.log_event))
    r = requests.head(server.url + "/echo")
    assert r.status_code == 200 and r.content == b""
    (event,) = collector.wait_for_events(1)
    assert event["request"]["verb"] == "HEAD"
    assert event["response"]["body"] is None and event["response"]["transfer_encoding"] is None
    assert event["transaction_id"] == r.headers["X-Moesif-Transaction-Id"]


def test_not_modified_304(collector: Any, serve: Any, make_middleware: Any) -> None:
    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/", MainHandler)], log_function=mw.log_event))
    first = requests.get(server.url + "/")
    second = requests.get(server.url + "/", headers={"If-None-Match": first.headers["Etag"]})
    assert second.status_code == 304
    _, event = collector.wait_for_events(2)
    assert event["response"]["status"] == 304
    assert event["response"]["body"] is None
    assert event["request"]["headers"]["If-None-Match"] == first.headers["Etag"]


def test_gzip_response_body_is_captured_as_written(collector: Any, serve: Any, make_middleware: Any) -> None:
    mw = make_middleware()
    app = tornado.web.Application([(r"/big", BigJsonHandler)], log_function=mw.log_event, compress_response=True)
    server = serve(app)
    raw = requests.get(server.url + "/big", headers={"Accept-Encoding": "gzip"}, stream=True)
    wire = raw.raw.read(decode_content=False)
    assert raw.headers["Content-Encoding"] == "gzip"
    expected = json.loads(gzip.decompress(wire))
    (event,) = collector.wait_for_events(1)
    # the body as the handler wrote it (before compression), the headers as sent (after it)
    assert event["response"]["body"] == expected
    assert event["response"]["transfer_encoding"] == "json"
    assert event["response"]["headers"]["Content-Encoding"] == "gzip"
    assert event["response"]["headers"]["X-Moesif-Transaction-Id"] == raw.headers["X-Moesif-Transaction-Id"]


def test_client_ip_from_forwarding_headers(collector: Any, serve: Any, make_middleware: Any) -> None:
    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/", MainHandler)], log_function=mw.log_event))
    requests.get(server.url + "/", headers={"X-Forwarded-For": "unknown, 10.0.0.1, 203.0.113.7"})
    requests.get(server.url + "/", headers={"X-Forwarded-For": "2001:db8::1"})
    events = collector.wait_for_events(2)  # two workers: the batches may arrive in either order
    assert sorted(e["request"]["ip_address"] for e in events) == ["10.0.0.1", "2001:db8::1"]


def test_user_from_authorization_headers(collector: Any, serve: Any, make_middleware: Any) -> None:
    def jwt(payload: dict[str, Any]) -> str:
        seg = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
        return f"eyJhbGciOiJIUzI1NiJ9.{seg}.c2ln"

    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/", MainHandler)], log_function=mw.log_event))
    requests.get(server.url + "/", auth=("alice", "pw"))
    requests.get(server.url + "/", headers={"Authorization": "Bearer " + jwt({"sub": "user-42"})})
    requests.get(server.url + "/", headers={"Authorization": "Token opaque"})
    basic, bearer, opaque = collector.wait_for_events(3)
    assert basic["user_id"] == "alice"
    assert bearer["user_id"] == "user-42"
    assert opaque["user_id"] is None

    mw2 = make_middleware(AUTHORIZATION_HEADER_NAME="X-Api-Key,Authorization", AUTHORIZATION_USER_ID_FIELD="uid")
    server2 = serve(tornado.web.Application([(r"/", MainHandler)], log_function=mw2.log_event))
    requests.get(server2.url + "/", headers={"X-Api-Key": jwt({"uid": "key-user"}), "Authorization": "Basic eA=="})
    requests.get(server2.url + "/", headers={"Authorization": "Bearer " + jwt({"uid": "auth-user"})})
    events = collector.wait_for_events(5)
    assert [e["user_id"] for e in events[3:]] == ["key-user", "auth-user"]


def test_transaction_id_reused_from_request_and_from_handler(collector: Any, serve: Any, make_middleware: Any) -> None:
    class Setter(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("X-Moesif-Transaction-Id", "from-the-handler")
            self.write("ok")

    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/", MainHandler), (r"/set", Setter)], log_function=mw.log_event))
    given = requests.get(server.url + "/", headers={"X-Moesif-Transaction-Id": "abc-123"})
    bad = requests.get(server.url + "/", headers={"X-Moesif-Transaction-Id": "not an id <script>"})
    own = requests.get(server.url + "/set")
    assert given.headers["X-Moesif-Transaction-Id"] == "abc-123"
    assert UUID_RE.match(bad.headers["X-Moesif-Transaction-Id"])
    assert own.headers["X-Moesif-Transaction-Id"] == "from-the-handler"
    events = collector.wait_for_events(3)
    assert [e["transaction_id"] for e in events] == [
        "abc-123",
        bad.headers["X-Moesif-Transaction-Id"],
        "from-the-handler",
    ]
    assert events[0]["request"]["headers"]["X-Moesif-Transaction-Id"] == "abc-123"
    assert events[2]["response"]["headers"]["X-Moesif-Transaction-Id"] == "from-the-handler"


def test_disabled_transaction_id(collector: Any, serve: Any, make_middleware: Any) -> None:
    mw = make_middleware(DISABLED_TRANSACTION_ID=True)
    server = serve(tornado.web.Application([(r"/", MainHandler)], log_function=mw.log_event))
    r = requests.get(server.url + "/")
    assert "X-Moesif-Transaction-Id" not in r.headers
    (event,) = collector.wait_for_events(1)
    assert UUID_RE.match(event["transaction_id"])  # an event id still, just not sent as a header
    assert "X-Moesif-Transaction-Id" not in event["request"]["headers"]
    assert "X-Moesif-Transaction-Id" not in event["response"]["headers"]


def test_log_body_false(collector: Any, serve: Any, make_middleware: Any) -> None:
    mw = make_middleware(LOG_BODY=False)
    server = serve(tornado.web.Application([(r"/echo", EchoHandler)], log_function=mw.log_event))
    r = requests.post(server.url + "/echo", json={"secret": "s"})
    assert r.json() == {"len": 15}
    (event,) = collector.wait_for_events(1)
    for side in ("request", "response"):
        assert event[side]["body"] is None and event[side]["transfer_encoding"] is None
    assert event["metadata"] is None
    assert event["transaction_id"] == r.headers["X-Moesif-Transaction-Id"]


def test_request_body_over_the_cap(collector: Any, serve: Any, make_middleware: Any) -> None:
    mw = make_middleware(MAX_BODY_SIZE=1000)
    server = serve(tornado.web.Application([(r"/echo", EchoHandler)], log_function=mw.log_event))
    body = json.dumps({"data": "x" * 2500}).encode()
    r = requests.post(server.url + "/echo", data=body, headers={"Content-Type": "application/json"})
    assert r.json() == {"len": len(body)}
    (event,) = collector.wait_for_events(1)
    assert event["request"]["transfer_encoding"] == "base64"
    assert base64.b64decode(event["request"]["body"]) == body[:1000]
    assert event["metadata"] == {"moesif_body_truncated": {"request": len(body)}}
    assert event["response"]["body"] == {"len": len(body)}


def test_errors_give_their_status(collector: Any, serve: Any, make_middleware: Any) -> None:
    class Boom(tornado.web.RequestHandler):
        def get(self) -> None:
            raise RuntimeError("boom")

    class Forbidden(tornado.web.RequestHandler):
        def get(self) -> None:
            raise tornado.web.HTTPError(403)

    class JsonErrors(tornado.web.RequestHandler):
        def get(self) -> None:
            raise ValueError("bad")

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            self.write({"error": status_code})

    mw = make_middleware()
    app = tornado.web.Application(
        [(r"/boom", Boom), (r"/forbidden", Forbidden), (r"/jsonerr", JsonErrors)], log_function=mw.log_event
    )
    server = serve(app)
    boom = requests.get(server.url + "/boom")
    forbidden = requests.get(server.url + "/forbidden")
    jsonerr = requests.get(server.url + "/jsonerr")
    missing = requests.get(server.url + "/nowhere")
    assert [boom.status_code, forbidden.status_code, jsonerr.status_code, missing.status_code] == [500, 403, 500, 404]
    events = collector.wait_for_events(4)
    assert [e["response"]["status"] for e in events] == [500, 403, 500, 404]
    assert base64.b64decode(events[0]["response"]["body"]) == boom.content
    assert events[0]["transaction_id"] == boom.headers["X-Moesif-Transaction-Id"]
    assert events[2]["response"]["body"] == {"error": 500}
    assert events[3]["request"]["uri"] == server.url + "/nowhere"
    assert events[3]["transaction_id"] == missing.headers["X-Moesif-Transaction-Id"]


def test_concurrent_requests_are_kept_apart(collector: Any, serve: Any, make_middleware: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    class Slow(tornado.web.RequestHandler):
        async def post(self) -> None:
            import asyncio

            n = json.loads(self.request.body)["n"]
            for i in range(3):
                self.write(f'{{"n": {n}, "part": {i}}}\n' if i else f'[{{"n": {n}}}')
                await self.flush()
                await asyncio.sleep(0.001)
            self.finish("]")

    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/slow", Slow)], log_function=mw.log_event))

    def call(n: int) -> tuple[int, str, bytes]:
        r = requests.post(server.url + "/slow", json={"n": n})
        return n, r.headers["X-Moesif-Transaction-Id"], r.content

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(24)))
    events = collector.wait_for_events(24)
    by_tid = {e["transaction_id"]: e for e in events}
    assert len(by_tid) == 24
    for n, tid, content in results:
        event = by_tid[tid]
        assert event["request"]["body"] == {"n": n}
        assert base64.b64decode(event["response"]["body"]) == content
