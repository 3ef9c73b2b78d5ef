"""moesifdjango under real servers (WSGI: Django's threaded server; ASGI: uvicorn), checked field by field against
docs/wire.md on the real loopback collector."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import time
import tracemalloc
from typing import Any

import djt_views
import pytest
import requests
from djt_support import KINDS, STACK, UUID_RE, b64, check_event, header, one, options, serve, wait_for_path

pytestmark = [
    pytest.mark.parametrize("kind", KINDS),
    # Django's own note when ASGI serves a sync iterator (our wrapper keeps the app's iterator kind)
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators:Warning"),
]


def test_post_json_event_field_by_field(kind: str, collector: Any) -> None:
    payload = {"name": "x", "password": "secret", "nested": {"n": 1}}
    moesif = options(collector, GET_METADATA=lambda req, res: {"case": "post_json", "status": res.status_code})
    with serve(kind, moesif) as url:
        r = requests.post(
            f"{url}/echo?a=1&b=two",
            data=json.dumps(payload),
            headers={"Content-Type": "application/json", "X-Case": "post_json"},
        )
        assert r.status_code == 200
        assert r.json()["parsed"] == payload  # the view read the same body we captured
        event = one(collector, "/echo")
    check_event(event, verb="POST", uri=f"{url}/echo?a=1&b=two", status=200)
    req, resp = event["request"], event["response"]
    assert req["api_version"] is None
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["Content-Length"] == str(len(json.dumps(payload)))
    assert req["headers"]["X-Case"] == "post_json"
    assert req["body"] == payload and req["transfer_encoding"] == "json"
    assert resp["headers"]["Content-Type"] == "application/json"
    assert resp["body"] == r.json() and resp["transfer_encoding"] == "json"
    # the client got the same transaction id the event carries
    assert r.headers["X-Moesif-Transaction-Id"] == event["transaction_id"]
    assert event["metadata"] == {"case": "post_json", "status": 200}
    assert event["user_id"] is None and event["company_id"] is None and event["session_token"] is None


def test_get_without_body(kind: str, collector: Any) -> None:
    with serve(kind, options(collector)) as url:
        r = requests.get(f"{url}/hello")
        assert r.json() == {"hello": "world"}
        event = one(collector, "/hello")
    check_event(event, verb="GET", uri=f"{url}/hello", status=200)
    assert event["request"]["body"] is None and event["request"]["transfer_encoding"] is None
    assert event["response"]["body"] == {"hello": "world"}


def test_form_with_csrf_goes_base64_and_the_view_still_reads_post(kind: str, collector: Any) -> None:
    with serve(kind, options(collector)) as url:
        s = requests.Session()
        page = s.get(f"{url}/form")
        token = page.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        r = s.post(
            f"{url}/form", data={"csrfmiddlewaretoken": token, "name": "bob"}, headers={"Referer": f"{url}/form"}
        )
        assert r.status_code == 200 and r.text == "thanks bob"
        # without the token CSRF refuses, and that 403 is an event too
        refused = s.post(f"{url}/form", data={"name": "eve"})
        assert refused.status_code == 403
        events = wait_for_path(collector, "/form", 3)
    (get,) = [e for e in events if e["request"]["verb"] == "GET"]
    (post,) = [e for e in events if e["response"]["status"] == 200 and e["request"]["verb"] == "POST"]
    (forbidden,) = [e for e in events if e["response"]["status"] == 403]
    assert get["request"]["verb"] == "GET"
    assert get["response"]["transfer_encoding"] == "base64"
    assert b"csrfmiddlewaretoken" in b64(get["response"]["body"])
    assert post["request"]["transfer_encoding"] == "base64"
    assert b64(post["request"]["body"]) == f"csrfmiddlewaretoken={token}&name=bob".encode()
    assert b64(post["response"]["body"]) == b"thanks bob"
    assert forbidden["response"]["status"] == 403


def test_login_gives_user_id_and_session_token(kind: str, collector: Any) -> None:
    with serve(kind, options(collector)) as url:
        s = requests.Session()
        assert s.post(f"{url}/login", data={"username": "alice", "password": "wonderland"}).json() == {"user": "alice"}
        session_id = s.cookies["sessionid"]
        assert s.get(f"{url}/whoami").json() == {"user": "alice"}
        s.get(f"{url}/hello")  # a view that never looks at request.user
        login_event = one(collector, "/login")
        whoami = one(collector, "/whoami")
        hello = one(collector, "/hello")
    # login(): request.user is the user, and the session key is the new one Django made
    assert login_event["user_id"] == "alice"
    assert login_event["session_token"] == session_id
    assert whoami["user_id"] == "alice" and whoami["session_token"] == session_id
    assert hello["session_token"] == session_id
    if kind == "wsgi":
        # sync mode: a request with a session resolves request.user (as the original did)
        assert hello["user_id"] == "alice"
    else:
        # async mode: no database access on the event loop; a user the view never resolved is not known
        assert hello["user_id"] is None


def test_authorization_header_rules_when_no_user(kind: str, collector: Any) -> None:
    def jwt(payload: dict[str, Any]) -> str:
        seg = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
        return f"eyJhbGciOiJub25lIn0.{seg}.sig"

    with serve(kind, options(collector)) as url:
        requests.get(f"{url}/hello?basic", auth=("alice", "pw"))
        requests.get(f"{url}/text?jwt", headers={"Authorization": f"Bearer {jwt({'sub': 'user-42'})}"})
        basic = one(collector, "/hello")
        bearer = one(collector, "/text")
    assert basic["user_id"] == "alice"
    assert bearer["user_id"] == "user-42"


def test_readme_callbacks_and_options(kind: str, collector: Any) -> None:
    """The README's sample settings: every callback takes (req, res)."""
    seen: dict[str, Any] = {}

    def identify_user(req: Any, res: Any) -> Any:
        seen["status"] = res.status_code
        if req.user and req.user.is_authenticated:
            return req.user.username
        return None

    def mask_event(eventmodel: Any) -> Any:
        if "password" in eventmodel.response.body:
            eventmodel.response.body["password"] = None
        return eventmodel

    moesif = options(
        collector,
        LOCAL_DEBUG=False,
        LOG_BODY=True,
        IDENTIFY_USER=identify_user,
        IDENTIFY_COMPANY=lambda req, res: "67890",
        GET_SESSION_TOKEN=lambda req, res: "XXXXXXXXXXXXXX",
        SKIP=lambda req, res: "health/probe" in req.path,
        MASK_EVENT_MODEL=mask_event,
        GET_METADATA=lambda req, res: {"datacenter": "westus", "deployment_version": "v1.2.3"},
        API_VERSION="1.2.3",
        REQUEST_HEADER_MASKS=["X-Secret"],
        RESPONSE_HEADER_MASKS=["Content-Type"],
        REQUEST_BODY_MASKS=["card"],
        RESPONSE_BODY_MASKS=["sha"],
    )
    with serve(kind, moesif) as url:
        s = requests.Session()
        s.post(f"{url}/login", data={"username": "alice", "password": "wonderland"})
        r = s.post(f"{url}/echo", json={"password": "pw", "card": "4111"}, headers={"X-Secret": "s3"})
        assert r.status_code == 200
        skipped = requests.get(f"{url}/health/probe")
        assert skipped.status_code == 404 and "X-Moesif-Transaction-Id" not in skipped.headers
        s.get(f"{url}/hello?after")
        echo = one(collector, "/echo")
        one(collector, "/hello")
    assert echo["user_id"] == "alice"  # README's identify_user works in async mode too (re-run off the loop)
    assert echo["company_id"] == "67890"
    assert echo["session_token"] == "XXXXXXXXXXXXXX"
    assert echo["metadata"] == {"datacenter": "westus", "deployment_version": "v1.2.3"}
    assert echo["request"]["api_version"] == "1.2.3"
    # masks remove what they name, as the originals did
    assert "x-secret" not in {k.lower() for k in echo["request"]["headers"]}
    assert echo["request"]["body"] == {"password": "pw"}
    assert "content-type" not in {k.lower() for k in echo["response"]["headers"]}
    assert "sha" not in echo["response"]["body"]
    assert echo["response"]["body"]["parsed"]["password"] == "pw"  # masked only where the user said
    assert seen["status"] == 200
    assert not [e for e in collector.events() if "probe" in e["request"]["uri"]]  # the probe was skipped


def test_streaming_response_streams_untouched_and_is_captured(kind: str, collector: Any) -> None:
    with serve(kind, options(collector)) as url:
        r = requests.get(f"{url}/stream", stream=True)
        chunks = list(r.iter_content(None))
        assert b"".join(chunks) == b"".join(djt_views.STREAM_CHUNKS)
        event = one(collector, "/stream")
    check_event(event, verb="GET", uri=f"{url}/stream", status=200)
    assert event["response"]["transfer_encoding"] == "base64"
    assert b64(event["response"]["body"]) == b"".join(djt_views.STREAM_CHUNKS)
    assert event["metadata"] is None


def test_streaming_over_cap_keeps_the_first_bytes(kind: str, collector: Any) -> None:
    with serve(kind, options(collector, MAX_BODY_SIZE=100)) as url:
        r = requests.get(f"{url}/stream")
        assert r.content == b"".join(djt_views.STREAM_CHUNKS)
        event = one(collector, "/stream")
    total = len(b"".join(djt_views.STREAM_CHUNKS))
    assert b64(event["response"]["body"]) == b"".join(djt_views.STREAM_CHUNKS)[:100]
    assert event["metadata"] == {"moesif_body_truncated": {"response": total}}


def test_file_response(kind: str, collector: Any) -> None:
    with serve(kind, options(collector, MAX_BODY_SIZE=1000)) as url:
        r = requests.get(f"{url}/file")
        assert r.content == djt_views.FILE_BYTES
        assert r.headers["Content-Length"] == str(len(djt_views.FILE_BYTES))
        assert r.headers["Content-Disposition"] == 'attachment; filename="report.csv"'
        event = one(collector, "/file")
    resp = event["response"]
    assert resp["status"] == 200
    assert resp["headers"]["Content-Length"] == str(len(djt_views.FILE_BYTES))
    assert resp["headers"]["Content-Disposition"] == 'attachment; filename="report.csv"'
    assert b64(resp["body"]) == djt_views.FILE_BYTES[:1000]
    assert event["metadata"] == {"moesif_body_truncated": {"response": len(djt_views.FILE_BYTES)}}


def test_file_response_without_log_body_is_not_touched(kind: str, collector: Any) -> None:
    with serve(kind, options(collector, LOG_BODY=False)) as url:
        r = requests.get(f"{url}/file")
        assert r.content == djt_views.FILE_BYTES
        event = one(collector, "/file")
    assert event["response"]["status"] == 200
    assert event["response"]["body"] is None and event["response"]["transfer_encoding"] is None


def test_view_exception_is_recorded_as_500(kind: str, collector: Any) -> None:
    with serve(kind, options(collector)) as url:
        r = requests.get(f"{url}/boom")
        assert r.status_code == 500
        event = one(collector, "/boom")
    check_event(event, verb="GET", uri=f"{url}/boom", status=500)


def test_head_response_has_no_body(kind: str, collector: Any) -> None:
    with serve(kind, options(collector)) as url:
        r = requests.head(f"{url}/text")
        assert r.status_code == 200
        event = one(collector, "/text")
    assert event["request"]["verb"] == "HEAD"
    assert event["response"]["body"] is None and event["response"]["transfer_encoding"] is None


def test_log_body_false_sends_no_bodies(kind: str, collector: Any) -> None:
    with serve(kind, options(collector, LOG_BODY=False)) as url:
        r = requests.post(f"{url}/echo", json={"a": 1})
        assert r.json()["parsed"] == {"a": 1}
        event = one(collector, "/echo")
    for side in ("request", "response"):
        assert event[side]["body"] is None and event[side]["transfer_encoding"] is None


def test_transaction_id_disabled_and_incoming_reused(kind: str, collector: Any) -> None:
    for key in ("DISABLE_TRANSACTION_ID", "DISABLED_TRANSACTION_ID"):  # Django's spelling and the others'
        collector.clear()
        with serve(kind, options(collector, **{key: True})) as url:
            r = requests.get(f"{url}/hello")
            assert "X-Moesif-Transaction-Id" not in r.headers
            event = one(collector, "/hello")
        # no header anywhere; the event's own id is the core's (never sent to the client)
        assert UUID_RE.match(event["transaction_id"])
        assert header(event["request"]["headers"], "X-Moesif-Transaction-Id") is None
        assert header(event["response"]["headers"], "X-Moesif-Transaction-Id") is None
    collector.clear()
    with serve(kind, options(collector)) as url:
        r = requests.get(f"{url}/hello", headers={"X-Moesif-Transaction-Id": "caller-chosen-id"})
        assert r.headers["X-Moesif-Transaction-Id"] == "caller-chosen-id"
        event = one(collector, "/hello")
    assert event["transaction_id"] == "caller-chosen-id"


def test_forwarded_ip(kind: str, collector: Any) -> None:
    with serve(kind, options(collector)) as url:
        requests.get(f"{url}/hello", headers={"X-Forwarded-For": "unknown, 10.0.0.1, 203.0.113.7"})
        requests.get(f"{url}/text", headers={"X-Forwarded-For": "2001:db8::1"})
        v4, v6 = one(collector, "/hello"), one(collector, "/text")
    assert v4["request"]["ip_address"] == "10.0.0.1"
    assert v6["request"]["ip_address"] == "2001:db8::1"


# -- request bodies and the cap ----------------------------------------------------------------------------


def test_over_cap_body_read_by_the_view_in_chunks(kind: str, collector: Any) -> None:
    body = os.urandom(300_000)
    with serve(kind, options(collector, MAX_BODY_SIZE=1000)) as url:
        r = requests.post(f"{url}/read", data=body, headers={"Content-Type": "application/octet-stream"})
        assert r.json() == {"len": len(body), "sha": hashlib.sha256(body).hexdigest()}
        event = one(collector, "/read")
    assert event["request"]["transfer_encoding"] == "base64"
    assert b64(event["request"]["body"]) == body[:1000]
    assert event["metadata"] == {"moesif_body_truncated": {"request": len(body)}}


def test_over_cap_body_the_view_ignores_is_not_read(kind: str, collector: Any) -> None:
    with serve(kind, options(collector, MAX_BODY_SIZE=1000)) as url:
        r = requests.post(f"{url}/ignore", data=b"z" * 50_000)
        assert r.status_code == 204
        event = one(collector, "/ignore")
    assert event["request"]["body"] is None and event["request"]["transfer_encoding"] is None
    assert event["metadata"] == {"moesif_body_truncated": {"request": 50_000}}


def test_over_cap_json_read_through_request_body(kind: str, collector: Any) -> None:
    payload = {"items": ["v" * 100] * 30}
    raw = json.dumps(payload).encode()
    with serve(kind, options(collector, MAX_BODY_SIZE=512)) as url:
        r = requests.post(f"{url}/echo", data=raw, headers={"Content-Type": "application/json"})
        assert r.json()["parsed"] == payload  # request.body whole for the view
        event = one(collector, "/echo")
    assert event["request"]["transfer_encoding"] == "base64"  # half a JSON document is not JSON
    assert b64(event["request"]["body"]) == raw[:512]
    assert event["metadata"]["moesif_body_truncated"] == {"request": len(raw), "response": len(r.content)}


def _multipart_file(size: int) -> tuple[str, str, bytes]:
    """A multipart body on disk (so the client does not hold it in memory either)."""
    boundary = "----moesifboundary7d9"
    content = os.urandom(size)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nreport\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    fd, path = tempfile.mkstemp(prefix="moesif-multipart-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(head + content + tail)
    return path, f"multipart/form-data; boundary={boundary}", content


def test_small_multipart_upload_captured_whole(kind: str, collector: Any) -> None:
    path, ctype, content = _multipart_file(2000)
    try:
        with serve(kind, options(collector)) as url, open(path, "rb") as fh:
            r = requests.post(f"{url}/upload", data=fh, headers={"Content-Type": ctype})
            event = one(collector, "/upload")
        with open(path, "rb") as fh:
            whole = fh.read()
    finally:
        os.unlink(path)
    assert r.json()["post"] == {"title": "report"}
    assert r.json()["files"]["file"]["sha"] == hashlib.sha256(content).hexdigest()
    assert b64(event["request"]["body"]) == whole
    assert event["metadata"] is None


def test_multipart_over_cap_is_not_read_into_memory(kind: str, collector: Any) -> None:
    size = 4 * 1024 * 1024  # over Django's FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): Django streams it to disk
    path, ctype, content = _multipart_file(size)
    total = os.path.getsize(path)
    try:
        with serve(kind, options(collector, MAX_BODY_SIZE=64 * 1024)) as url, open(path, "rb") as fh:
            tracemalloc.start()
            try:
                r = requests.post(f"{url}/upload", data=fh, headers={"Content-Type": ctype})
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            event = one(collector, "/upload")
        with open(path, "rb") as fh:
            head = fh.read(64 * 1024)
    finally:
        os.unlink(path)
    got = r.json()
    assert got["post"] == {"title": "report"}
    assert got["files"]["file"] == {"size": size, "sha": hashlib.sha256(content).hexdigest(), "in_memory": False}
    if kind == "wsgi":
        # client, server and app share this process: the whole request cost well under the 4 MB upload
        # (uvicorn + Django's ASGI handler spool the body themselves, so the bound is only checked here)
        assert peak < 2 * 1024 * 1024, peak
    assert event["request"]["transfer_encoding"] == "base64"
    assert b64(event["request"]["body"]) == head
    assert event["metadata"] == {"moesif_body_truncated": {"request": total}}


def test_many_events_ship_fast(kind: str, collector: Any) -> None:
    """The original ships at most 25 events per 2 s per process (150 would take 12 s); we keep up."""
    n = 150
    with serve(kind, options(collector, EVENT_BATCH_TIMEOUT=2)) as url:
        start = time.monotonic()
        for i in range(n):
            # a connection per request: keep-alive on these servers meets the 40 ms delayed-ACK stall
            requests.get(f"{url}/hello?i={i}", headers={"Connection": "close"})
        events = collector.wait_for_events(n, timeout=20)
        elapsed = time.monotonic() - start
    assert len([e for e in events if "/hello" in e["request"]["uri"]]) == n
    assert elapsed < 10, elapsed
    batches = [r for r in collector.requests() if r.get("path") == "/v1/events/batch"]
    assert batches and all(r.get("status") in (200, 201) for r in batches)


def test_refused_host_is_recorded_as_sent(kind: str, collector: Any) -> None:
    """Placed first (outside CommonMiddleware, which refuses the host), we see Django's 400 and record the URL
    with the host as the client sent it."""
    with serve(kind, options(collector), middleware=[STACK[-1], *STACK[:-1]]) as url:
        r = requests.get(f"{url}/hello?x=1", headers={"Host": "evil.example"})
        assert r.status_code == 400  # Django's DisallowedHost
        event = one(collector, "/hello")
    assert event["request"]["uri"] == "http://evil.example/hello?x=1"
    assert event["response"]["status"] == 400


def test_chunked_request_body_is_teed(kind: str, collector: Any) -> None:
    """No Content-Length: never read by us; what the view reads is kept up to the cap. (Django's WSGI server
    does not support chunked requests: there the view reads an empty body, and so do we.)"""
    parts = [b"x" * 1000, b"y" * 1000, b"z" * 1000]
    with serve(kind, options(collector, MAX_BODY_SIZE=1500)) as url:
        r = requests.post(f"{url}/read", data=iter(parts), headers={"Content-Type": "application/octet-stream"})
        event = one(collector, "/read")
    body = b"".join(parts)
    if kind == "asgi":
        assert r.json() == {"len": len(body), "sha": hashlib.sha256(body).hexdigest()}
        assert b64(event["request"]["body"]) == body[:1500]
        assert event["metadata"] == {"moesif_body_truncated": {"request": len(body)}}
    else:
        assert r.json()["len"] == 0
        assert event["request"]["body"] is None


def test_propagated_exception_still_recorded(kind: str, collector: Any) -> None:
    """DEBUG_PROPAGATE_EXCEPTIONS: the exception reaches the server through us; we record the 500 on the way."""
    with serve(kind, options(collector), DEBUG_PROPAGATE_EXCEPTIONS=True) as url:
        r = requests.get(f"{url}/boom")
        assert r.status_code == 500
        event = one(collector, "/boom")
    assert event["response"]["status"] == 500
