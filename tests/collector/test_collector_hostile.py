"""What an attacker can send to the collector, sent exactly: every answer is a clean 4xx/503, nothing leaks into
the terminal, and the database stays private and consistent (issue 18)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from moesif_collector import Collector
from moesif_collector.access import HostPolicy
from moesif_collector.web import describe_body

APP = "hostile-app"


def raw_exchange(url: str, head: bytes, body: bytes = b"", timeout: float = 10.0) -> tuple[int, bytes]:
    """Send bytes as they are on one connection and read one answer (status, body); the socket stays open while
    waiting, so a server reading to EOF would never answer (and the timeout fails the test)."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head + body)
        reader = sock.makefile("rb")
        status_line = reader.readline()
        headers: dict[str, str] = {}
        while True:
            line = reader.readline().decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        data = reader.read(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), data


def chunked_head(path: str = "/v1/events", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Moesif-Application-Id: {APP}\r\n"
        f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n{extra}\r\n"
    ).encode()


# -- 1. chunked bodies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size_line", [b"-1", b"+a", b"0x10", b"1_0", b" 10", b"10000000000000000000"])
@pytest.mark.parametrize("path", ["/v1/events", "/_admin/faults"])
def test_chunk_sizes_other_than_hex_digits_are_refused(collector: Collector, size_line: bytes, path: str) -> None:
    status, body = raw_exchange(collector.url, chunked_head(path), size_line + b"\r\n" + b"x" * 64)
    assert status == 400, body
    assert b"chunk size" in body
    assert collector.count_events() == 0 and collector.app.inflight.used == 0


def test_chunked_total_is_bounded(helpers: Any) -> None:
    with Collector(max_body=10_000) as small:
        chunks = b"".join(b"%x\r\n%s\r\n" % (3000, b"x" * 3000) for _ in range(4))
        status, body = raw_exchange(small.url, chunked_head(), chunks)
        assert status == 413 and b"10000 byte limit" in body
        ok = json.dumps({"user_id": "u"}).encode()
        status, _ = raw_exchange(small.url, chunked_head("/v1/users"), b"%x\r\n%s\r\n0\r\n\r\n" % (len(ok), ok))
        assert status == 201 and [u["user_id"] for u in small.users()] == ["u"]


@pytest.mark.parametrize("length", ["-1", "+5", "5_0", " 5 5", "\u0665"])
def test_content_length_must_be_digits(collector: Collector, length: str) -> None:
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Moesif-Application-Id: {APP}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    status, body = raw_exchange(collector.url, head, b"{}")
    assert status == 400 and b"Content-Length" in body


# -- 2. /_admin and Host ----------------------------------------------------------------------------------------------


def test_admin_writes_need_json_and_a_same_origin(collector: Collector, client: Any, make_event: Any) -> None:
    assert client.post("/v1/events/batch", [make_event()]).status == 201
    # what a page on another origin can send without a preflight: text/plain (or a form), no-cors
    for content_type in ("text/plain;charset=UTF-8", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        assert client.request("POST", "/_admin/clear", b"{}", headers).status == 415
        reply = client.request("POST", "/_admin/faults", b'{"mode":"status429","retry_after":999}', headers)
        assert reply.status == 415 and "application/json" in reply.json()["message"]
    foreign = {"Content-Type": "application/json", "Origin": "http://evil.example"}
    assert client.request("POST", "/_admin/clear", b"{}", foreign).status == 403
    assert client.request("DELETE", "/_admin/faults", None, {"Origin": "http://127.0.0.1:1"}).status == 403
    assert collector.count_events() == 1 and collector.app.faults.settings.mode == "ok"
    own = {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{collector.port}"}
    assert client.request("POST", "/_admin/faults", b'{"mode":"error500"}', own).status == 200
    assert client.request("POST", "/_admin/clear", None, {"Content-Type": "application/json"}).status == 200
    assert collector.count_events() == 0


def test_host_must_name_this_collector(collector: Collector, make_event: Any) -> None:
    def get(path: str, host: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": host, "X-Moesif-Application-Id": APP})
            return conn.getresponse().status
        finally:
            conn.close()

    port = collector.port
    for path in ("/", "/api/calls", "/api/stats", "/_admin/health", "/_admin/requests"):
        assert get(path, f"evil.example:{port}") == 403, path  # a DNS-rebinding page
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"LOCALHOST.:{port}"):
            assert get(path, host) == 200, (path, host)
    assert get("/v1/config", f"evil.example:{port}") == 200  # the ingestion API answers any name, by design


def test_host_policy() -> None:
    assert HostPolicy("127.0.0.1").loopback_only and HostPolicy("::1").loopback_only
    assert not HostPolicy("0.0.0.0").loopback_only and not HostPolicy("192.168.1.5").loopback_only
    loopback = HostPolicy("127.0.0.1")
    assert loopback.allows("[::1]:5080") and loopback.allows("127.3.4.5") and loopback.allows(None)
    assert not loopback.allows("192.168.1.5:5080") and not loopback.allows("127.0.0.1.evil.example")
    wildcard = HostPolicy("0.0.0.0", ["collector.lan"])
    assert wildcard.allows("192.168.1.5:5080") and wildcard.allows("collector.lan:80")
    assert not wildcard.allows("evil.example")
    assert HostPolicy("127.0.0.1", ["*"]).allows("anything.example")


def test_serve_on_loopback_prints_no_warning(tmp_path: Path, helpers: Any) -> None:
    proc, _, _ = helpers.start_serve(tmp_path)
    proc.terminate()
    _, err = proc.communicate(timeout=15)
    assert "WARNING" not in err


def test_optional_token_guards_page_api_and_admin(make_event: Any) -> None:
    token = 's3cret; with=odd "chars"'
    with Collector(token=token) as guarded:

        def call(method: str, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
            conn = http.client.HTTPConnection("127.0.0.1", guarded.port, timeout=10)
            body = json.dumps([make_event()]).encode() if method == "POST" else None
            conn.request(method, path, body=body, headers={"X-Moesif-Application-Id": APP, **(headers or {})})
            response = conn.getresponse()
            response.read()
            conn.close()
            return response

        assert call("POST", "/v1/events/batch").status == 201  # SDKs never need it
        for path in ("/", "/api/calls", "/static/app.js", "/_admin/health"):
            assert call("GET", path).status == 401, path
            assert call("GET", path, {"Authorization": "Bearer wrong"}).status == 401, path
            assert call("GET", path, {"Authorization": f"Bearer {token}"}).status == 200, path
        assert call("GET", "/?token=wrong").status == 401
        opened = call("GET", "/?" + urlencode({"token": token}))
        assert opened.status == 303 and opened.getheader("Location") == "/"
        cookie = opened.getheader("Set-Cookie") or ""
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        jar = cookie.split(";", 1)[0]
        assert call("GET", "/api/calls", {"Cookie": jar}).status == 200
        assert call("GET", "/api/calls", {"Cookie": "moesif_collector_token=nope"}).status == 401


def test_stats_and_tail_send_the_token(helpers: Any, make_event: Any) -> None:
    with Collector(token="t0k") as guarded:
        c = helpers.Client(guarded.url)
        assert c.post("/v1/events", make_event(1)).status == 201
        c.close()
        for command in (("stats", "--json"), ("tail", "--no-follow")):
            refused = subprocess.run(
                helpers.cli(*command, "--url", guarded.url), capture_output=True, text=True, timeout=30
            )
            assert refused.returncode == 2 and "401" in refused.stderr
            done = subprocess.run(
                helpers.cli(*command, "--url", guarded.url, "--token", "t0k"),
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0 and ("/api/items" in done.stdout or '"calls": 1' in done.stdout), done


# -- 3. terminal escapes ----------------------------------------------------------------------------------------------

EVIL = "\x1b]0;title\x07\x1b[2J\x1b]8;;http://evil/\x07click\r\x9b31m\x7f"


def test_tail_and_stats_print_no_control_characters(tmp_path: Path, helpers: Any, make_event: Any) -> None:
    db = str(tmp_path / "t.db")
    with Collector(db_path=db) as running:
        event = make_event(1, user_id=EVIL)
        event["request"]["uri"] = "http://h/p" + EVIL
        event["request"]["verb"] = "GET" + EVIL
        event["request"]["time"] = "not a time" + EVIL
        c = helpers.Client(running.url)
        assert c.post("/v1/events", event).status == 201
        c.close()
    outputs = []
    for args in (("tail", "--db", db, "--no-follow"), ("stats", "--db", db), ("stats", "--db", db, "--json")):
        done = subprocess.run(helpers.cli(*args), capture_output=True, text=True, timeout=30, check=True)
        outputs.append(done.stdout)
    for out in outputs:
        assert not any((ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F for ch in out), repr(out)
    tail_line = outputs[0].strip()
    assert "\n" not in tail_line
    assert "\\x1b]0;title\\x07" in tail_line and "\\x9b31m" in tail_line  # shown, visibly, not run
    assert "\\x1b[2J" in outputs[1]
    assert json.loads(outputs[2])["routes"][0]["verb"].startswith("GET" + "\x1b")  # JSON escapes, still exact


def test_the_page_uses_the_same_rule() -> None:
    import base64

    def kind(raw: bytes) -> str:
        return str(describe_body(base64.b64encode(raw).decode(), "base64")["kind"])

    assert kind(b"line one\r\n\tline two") == "text"
    for control in ("\x1b", "\x07", "\x7f", "\x85", "\x9b", "\x0c"):
        assert kind(f"a{control}b".encode()) == "base64", repr(control)


# -- 4. malformed input: 400 naming what is wrong (404 for an impossible id) --------------------------------------


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda e: e["request"].__setitem__("uri", "\ud800"), "event.request.uri holds a lone surrogate ('\\ud800')"),
        (lambda e: e.__setitem__("user_id", "a\udfffb"), "event.user_id holds a lone surrogate"),
        (lambda e: e.__setitem__("metadata", {"k\ud800": 1}), "event.metadata.k\\ud800 (a key) holds a lone surrogate"),
        (lambda e: e["response"].__setitem__("status", 2**63), "event.response.status must be an integer from 0"),
        (lambda e: e["response"].__setitem__("status", -1), "event.response.status must be an integer from 0"),
        (lambda e: e.__setitem__("metadata", {"n": [1, 1e999]}), "event.metadata.n[1] is a number out of range"),
    ],
)
def test_unstorable_values_are_a_400_naming_them(
    collector: Collector, client: Any, make_event: Any, mutate: Any, where: str
) -> None:
    event = make_event(1)
    mutate(event)
    raw = json.dumps(event).replace("Infinity", "1e999").encode()  # 1e999 parses to inf
    reply = client.post("/v1/events", raw=raw)
    assert reply.status == 400, reply
    assert where in reply.json()["message"]
    assert collector.count_events() == 0
    assert client.post("/v1/events", make_event(2)).status == 201  # the collector is fine afterwards


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_refused(
    collector: Collector, client: Any, make_event: Any, literal: str
) -> None:
    raw = json.dumps({**make_event(1), "metadata": {"x": "@"}}).replace('"@"', literal)
    reply = client.post("/v1/events", raw=raw.encode())
    assert reply.status == 400 and f"{literal} is not a JSON number" in reply.json()["message"]
    assert collector.count_events() == 0


def test_every_stored_call_is_strict_json_on_the_page(collector: Collector, client: Any, make_event: Any) -> None:
    assert client.post("/v1/events", make_event(1)).status == 201
    call_id = collector.calls()[0]["id"]
    reply = client.get(f"/api/calls/{call_id}", app_id=None)
    json.loads(reply.body, parse_constant=lambda name: pytest.fail(f"{name} in page JSON"))
    for bad in (str(2**63), str(2**64), "99999999999999999999999", "-1", "+1", "1_0", "1x"):
        assert client.get(f"/api/calls/{bad}", app_id=None).status == 404, bad


# -- 5. bytes in flight -----------------------------------------------------------------------------------------------


def _event_of_size(make_event: Any, size: int) -> bytes:
    event = make_event(1)
    event["request"]["body"] = ""
    pad = size - len(json.dumps(event).encode())
    event["request"]["body"] = "x" * pad
    data = json.dumps(event).encode()
    assert len(data) == size
    return data


def test_bytes_in_flight_are_bounded_across_requests(helpers: Any, make_event: Any) -> None:
    with Collector(max_body=1_000_000, max_inflight=1_000_000) as small:
        small.app.inflight.wait = 0.2  # how long a request waits for room before its 503
        first = _event_of_size(make_event, 800_000)
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Moesif-Application-Id: {APP}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(first)}\r\n\r\n"
        ).encode()
        slow = socket.create_connection(("127.0.0.1", small.port), timeout=10)
        try:
            slow.sendall(head + first[:1000])  # a slow upload: 800 kB reserved, 1 kB arrived
            helpers.wait_until(lambda: small.app.inflight.used == 800_000, message="first upload reserved")
            second = helpers.Client(small.url)
            reply = second.post("/v1/events", raw=_event_of_size(make_event, 400_000))
            assert reply.status == 503 and reply.headers["retry-after"] == "1"
            assert "in flight" in reply.json()["message"]
            slow.sendall(first[1000:])
            answer = slow.makefile("rb").readline()
            assert answer.split()[1] == b"201"
        finally:
            slow.close()
        helpers.wait_until(lambda: small.app.inflight.used == 0, message="budget released")
        assert second.post("/v1/events", raw=_event_of_size(make_event, 400_000)).status == 201
        second.close()
        assert small.count_events() == 2 and small.app.inflight.peak <= 1_000_000


def test_one_body_over_the_budget_still_goes_alone(make_event: Any, helpers: Any) -> None:
    with Collector(max_body=1_000_000, max_inflight=100_000) as small:
        c = helpers.Client(small.url)
        assert c.post("/v1/events", raw=_event_of_size(make_event, 300_000)).status == 201
        assert c.post("/v1/events", make_event(2)).status == 201  # gzip: raw and inflated bytes both reserved
        c.close()
        assert small.count_events() == 2
        helpers.wait_until(lambda: small.app.inflight.used == 0, message="budget released")


# -- 6. the database file is private ---------------------------------------------------------------------------------


def test_database_file_is_created_0600(tmp_path: Path, make_event: Any, helpers: Any) -> None:
    old = os.umask(0o022)
    try:
        with Collector(db_path=tmp_path / "c.db") as running:
            c = helpers.Client(running.url)
            assert c.post("/v1/events", make_event(1)).status == 201
            c.close()
            for name in ("c.db", "c.db-wal", "c.db-shm"):
                mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
                assert mode == 0o600, (name, oct(mode))
    finally:
        os.umask(old)
