"""Flask, Bottle and Pyramid wrapped as their READMEs say, served by werkzeug's threaded server on 127.0.0.1, sending
to the real local collector; the events are checked field by field against docs/wire.md."""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests
import wsgi_apps
from wsgi_support import (
    BASIC_ALICE,
    JWT,
    UUID_RE,
    events_for,
    one_event,
    raw_request,
    serve,
    settings_for,
    split_response,
)

import moesifwsgi
from moesif_core import TRUNCATED_METADATA_KEY

FRAMEWORKS = ["flask", "bottle", "pyramid"]


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(collector: Any, framework: str) -> Iterator[Any]:
    """``run(**settings)`` -> (server, middleware): the framework's app, wrapped, served on 127.0.0.1."""
    stack: List[Tuple[Any, Any]] = []

    def _run(**settings: Any) -> Tuple[Any, Any]:
        app = wsgi_apps.FRAMEWORKS[framework]()
        wsgi, mw = wsgi_apps.wrap(framework, app, settings_for(collector, **settings))
        ctx = serve(wsgi)
        server = ctx.__enter__()
        stack.append((ctx, mw))
        return server, mw

    yield _run
    for ctx, mw in stack:
        ctx.__exit__(None, None, None)
        mw.shutdown(2)


def test_json_api_with_jwt_and_forwarded_ip(run: Any, collector: Any) -> None:
    server, mw = run(REQUEST_BODY_MASKS=["password"], RESPONSE_BODY_MASKS=["token"], REQUEST_HEADER_MASKS=["X-Api-Key"])
    body = {"name": "x", "password": "secret", "nested": [{"password": "p2"}]}
    r = requests.post(
        server.url + "/echo?a=1&b=two",
        json=body,
        timeout=10,
        headers={
            "Authorization": f"Bearer {JWT}",
            "X-Forwarded-For": "unknown, 10.0.0.1, 203.0.113.7",
            "X-Api-Key": "k",
        },
    )
    assert r.status_code == 200
    sent = json.dumps(body).encode()
    assert r.json() == {"len": len(sent), "token": "resp-secret", "echo": body}
    tx = r.headers["X-Moesif-Transaction-Id"]
    assert UUID_RE.match(tx)

    e = one_event(collector, mw)
    req, resp = e["request"], e["response"]
    assert e["transaction_id"] == tx
    assert req["uri"] == f"{server.url}/echo?a=1&b=two"
    assert req["verb"] == "POST"
    assert req["ip_address"] == "10.0.0.1"
    assert req["api_version"] is None
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["Content-Length"] == str(len(sent))
    assert req["headers"]["Host"] == f"127.0.0.1:{server.port}"
    assert "X-Api-Key" not in req["headers"]  # masks remove what they name
    assert req["headers"]["X-Moesif-Transaction-Id"] == tx
    assert req["transfer_encoding"] == "json"
    assert req["body"] == {"name": "x", "nested": [{}]}
    assert resp["status"] == 200
    assert resp["transfer_encoding"] == "json"
    assert resp["body"] == {
        "len": len(sent),
        "echo": {**body, "password": "secret", "nested": [{"password": "p2"}]},
    }
    assert resp["headers"]["X-Moesif-Transaction-Id"] == tx
    assert resp["headers"]["Content-Type"].startswith("application/json")
    assert e["user_id"] == "user-42"
    assert e["weight"] == 1 and e["blocked_by"] is None and e["tags"] is None


def test_form_post_goes_base64_with_basic_user(run: Any, collector: Any) -> None:
    server, mw = run()
    r = requests.post(
        server.url + "/form", data={"name": "alice smith"}, headers={"Authorization": BASIC_ALICE}, timeout=10
    )
    assert r.status_code == 200 and r.text == "<p>hello alice smith</p>"
    e = one_event(collector, mw)
    assert e["user_id"] == "alice"
    assert e["request"]["transfer_encoding"] == "base64"
    assert base64.b64decode(e["request"]["body"]) == b"name=alice+smith"
    assert e["request"]["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert e["response"]["transfer_encoding"] == "base64"
    assert base64.b64decode(e["response"]["body"]) == b"<p>hello alice smith</p>"
    assert e["response"]["headers"]["Content-Type"].startswith("text/html")


def test_readme_callbacks_and_environ_keys(run: Any, collector: Any) -> None:
    seen: Dict[str, Any] = {}

    def identify_user(app: Any, environ: Dict[str, Any], response_headers: Dict[str, str] = dict()) -> str:  # noqa: B006
        seen["body"] = environ["moesif.request_body"]
        seen["chunks"] = environ["moesif.response_body_chunks"]
        seen["headers"] = environ["moesif.response_headers"]
        seen["response_headers"] = response_headers
        return "12345"

    def mask_event(eventmodel: Any) -> Any:
        if "token" in eventmodel.response.body:
            eventmodel.response.body["token"] = None
        return eventmodel

    server, mw = run(
        IDENTIFY_USER=identify_user,
        IDENTIFY_COMPANY=lambda app, environ, response_headers=dict(): "67890",
        GET_SESSION_TOKEN=lambda app, environ: "XXXXXXXXXXXXXX",
        GET_METADATA=lambda app, environ: {"datacenter": "westus", "path": environ["PATH_INFO"]},
        SKIP=lambda app, environ: "health/probe" in environ.get("PATH_INFO", ""),
        MASK_EVENT_MODEL=mask_event,
        API_VERSION="1.2.3",
    )
    assert requests.get(server.url + "/health/probe", timeout=10).status_code == 404  # skipped: no event
    r = requests.post(server.url + "/echo", json={"q": 1}, timeout=10)
    e = one_event(collector, mw)
    assert e["user_id"] == "12345" and e["company_id"] == "67890" and e["session_token"] == "XXXXXXXXXXXXXX"
    assert e["metadata"] == {"datacenter": "westus", "path": "/echo"}
    assert e["request"]["api_version"] == "1.2.3"
    assert e["response"]["body"]["token"] is None
    assert seen["body"] == {"q": 1}
    assert json.loads(b"".join(seen["chunks"])) == r.json()
    assert seen["headers"] == seen["response_headers"]
    assert seen["headers"]["X-Moesif-Transaction-Id"] == r.headers["X-Moesif-Transaction-Id"]


def test_upload_of_2_mb_is_passed_whole_and_captured_to_the_cap(run: Any, collector: Any) -> None:
    server, mw = run()
    data = bytes(range(256)) * 8192  # 2 MiB
    r = requests.post(
        server.url + "/upload", data=data, headers={"Content-Type": "application/octet-stream"}, timeout=30
    )
    assert r.status_code == 200 and r.json() == {"len": len(data)}
    e = one_event(collector, mw)
    assert e["request"]["transfer_encoding"] == "base64"
    assert base64.b64decode(e["request"]["body"]) == data[: 1 << 20]
    assert e["metadata"] == {TRUNCATED_METADATA_KEY: {"request": len(data)}}
    assert e["response"]["body"] == {"len": len(data)}


def test_upload_within_a_raised_cap_is_whole(run: Any, collector: Any) -> None:
    server, mw = run(MAX_BODY_SIZE=4 << 20)
    data = b'{"blob": "' + b"z" * (2 << 20) + b'"}'
    r = requests.post(server.url + "/echo", data=data, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 200
    e = one_event(collector, mw)
    assert e["request"]["transfer_encoding"] == "json" and len(e["request"]["body"]["blob"]) == 2 << 20
    assert e["metadata"] is None


def test_streamed_download(run: Any, collector: Any) -> None:
    server, mw = run()
    size = 5 << 20
    with requests.get(server.url + f"/stream?size={size}&chunk=65536", stream=True, timeout=30) as r:
        got = b"".join(r.iter_content(1 << 16))
    assert got == wsgi_apps.expected_stream(size)
    e = one_event(collector, mw)
    assert e["response"]["status"] == 200
    assert base64.b64decode(e["response"]["body"]) == got[: 1 << 20]
    assert e["metadata"] == {TRUNCATED_METADATA_KEY: {"response": size}}
    assert e["response"]["headers"]["Content-Length"] == str(size)


def test_head_404_and_exception(run: Any, collector: Any, framework: str) -> None:
    server, mw = run()
    head = requests.head(server.url + "/items/7", timeout=10)
    missing = requests.post(server.url + "/nowhere", json={"a": 1}, timeout=10)
    boom = requests.get(server.url + "/boom", timeout=10)
    assert (head.status_code, missing.status_code, boom.status_code) == (200, 404, 500)
    assert head.content == b""
    events = {e["request"]["uri"].split("/", 3)[3]: e for e in events_for(collector, mw, 3)}
    h, m, b = events["items/7"], events["nowhere"], events["boom"]
    assert h["request"]["verb"] == "HEAD" and h["response"]["status"] == 200
    assert h["response"]["body"] is None and h["response"]["transfer_encoding"] is None
    assert m["response"]["status"] == 404
    assert m["request"]["body"] == {"a": 1}  # the app never read it: the middleware did, at the end
    assert b["response"]["status"] == 500
    assert b["request"]["verb"] == "GET"


def test_non_utf8_path_and_headers(run: Any, collector: Any) -> None:
    server, mw = run()
    raw = raw_request(
        server.port,
        (
            b"GET /items/caf%C3%A9%E9?q=%C3%A9&r=\xe9 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Latin: caf\xe9\xff\r\nX-Utf8: caf\xc3\xa9\r\nConnection: close\r\n\r\n"
        ),
    )
    status, _, _ = split_response(raw)
    e = one_event(collector, mw)
    uri = e["request"]["uri"]
    # werkzeug's dev server decodes the path as UTF-8 (a lone %E9 becomes U+FFFD) and re-encodes raw query bytes
    # as UTF-8; whatever the server hands over, the uri stays a valid ASCII URI (exact bytes: test_wsgi_servers)
    assert uri.isascii() and " " not in uri
    assert uri.startswith("http://127.0.0.1/items/caf%C3%A9") and uri.endswith("?q=%C3%A9&r=%C3%A9")
    assert e["request"]["headers"]["X-Latin"] == "caf\xe9\xff"
    assert e["request"]["headers"]["X-Utf8"] == "café"
    assert e["response"]["status"] == int(status.split()[1]) == 200


def test_log_body_false(run: Any, collector: Any) -> None:
    server, mw = run(LOG_BODY=False)
    r = requests.post(server.url + "/echo", json={"a": 1}, timeout=10)
    assert r.json()["len"] == 8
    e = one_event(collector, mw)
    for side in ("request", "response"):
        assert e[side]["body"] is None and e[side]["transfer_encoding"] is None
    assert e["request"]["headers"]["Content-Length"] == "8"


def test_disabled_transaction_id(run: Any, collector: Any) -> None:
    server, mw = run(DISABLED_TRANSACTION_ID=True)
    r = requests.get(server.url + "/items/1", timeout=10)
    assert "X-Moesif-Transaction-Id" not in r.headers
    e = one_event(collector, mw)
    assert UUID_RE.match(e["transaction_id"])  # the event still has an id (as the original's did), no header
    assert "X-Moesif-Transaction-Id" not in e["request"]["headers"]
    assert "X-Moesif-Transaction-Id" not in e["response"]["headers"]


def test_profiles(run: Any, collector: Any) -> None:
    _, mw = run()
    assert mw.update_user({"user_id": "12345", "company_id": "67890", "metadata": {"email": "john@acmeinc.com"}})
    assert mw.update_users_batch([{"user_id": "a"}, {"user_id": "b"}])
    assert mw.update_company({"company_id": "67890", "company_domain": "acmeinc.com"})
    assert mw.update_companies_batch([{"company_id": "c1"}])
    assert {u["user_id"] for u in collector.users()} == {"12345", "a", "b"}
    assert {c["company_id"] for c in collector.companies()} == {"67890", "c1"}
    assert mw.update_user({"company_id": "x"}) is False  # logged, never raised into the app (as the original)


def _jwt(payload: Dict[str, Any]) -> str:
    def seg(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{seg({'alg': 'none'})}.{seg(payload)}.sig"


@pytest.fixture
def restore_moesif_logger() -> Iterator[None]:
    """``DEBUG: True`` sets up the ``moesif`` logger; put it back for the tests that follow."""
    import logging

    log = logging.getLogger("moesif")
    level, handlers = log.level, list(log.handlers)
    yield
    log.setLevel(level)
    log.handlers[:] = handlers


def test_transport_and_identity_options(run: Any, collector: Any, restore_moesif_logger: None) -> None:
    import logging

    server, mw = run(
        DEBUG=True,
        BATCH_SIZE=2,
        EVENT_BATCH_TIMEOUT=30,
        EVENT_WORKER_COUNT=1,
        EVENT_QUEUE_SIZE=100,
        AUTHORIZATION_HEADER_NAME="X-Api-Key, Authorization",
        AUTHORIZATION_USER_ID_FIELD="user_id",
    )
    assert logging.getLogger("moesif").isEnabledFor(logging.DEBUG)
    for i in range(4):
        requests.get(
            server.url + f"/items/{i}",
            headers={
                "X-Api-Key": _jwt({"user_id": f"key-{i}"}),
                "Authorization": f"Bearer {_jwt({'user_id': 'bearer'})}",
            },
            timeout=10,
        )
    requests.get(
        server.url + "/items/9", headers={"Authorization": f"Bearer {_jwt({'user_id': 'bearer'})}"}, timeout=10
    )
    events = events_for(collector, mw, 5)
    assert sorted(e["user_id"] for e in events) == ["bearer", "key-0", "key-1", "key-2", "key-3"]
    posts = [r for r in collector.requests() if r["path"] == "/v1/events/batch"]
    assert sum(r["items"] for r in posts) == 5 and max(r["items"] for r in posts) == 2
    for r in posts:
        assert r["user_agent"] == f"moesifwsgi-python/{moesifwsgi.__version__}"
        assert r["app_id"] == "wsgi-test-app" and r["content_encoding"] == "gzip"


def test_event_queue_size_bounds_what_is_held(run: Any, collector: Any) -> None:
    server, mw = run(EVENT_QUEUE_SIZE=3, BATCH_SIZE=100, EVENT_BATCH_TIMEOUT=60)
    for i in range(5):
        assert requests.get(server.url + f"/items/{i}", timeout=10).status_code == 200  # never blocked
    # the server thread ends each call just after the client has its last byte: wait for the 5 to be counted
    deadline = time.monotonic() + 10
    while sum(mw.agent.snapshot()[k] for k in ("queued", "dropped")) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    snapshot = mw.agent.snapshot()
    assert (snapshot["queued"], snapshot["dropped"]) == (3, 2)
    events = events_for(collector, mw, 3)
    assert sorted(e["request"]["uri"][-1] for e in events) == ["0", "1", "2"]
