"""Outgoing capture of ``requests`` calls, against a real loopback third-party API and the real local collector."""

from __future__ import annotations

import base64
import gc
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from outgoing_helpers import Capture, ThirdPartyAPI, pattern

import moesifpythonrequest
from moesif_core import MoesifAPIClient


def only(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(events) == 1
    return events[0]


def test_plain_get(started: Capture, api: ThirdPartyAPI) -> None:
    url = api.url("/json?a=1&b=two")
    r = requests.get(url, headers={"Authorization": "Basic YWxpY2U6cHc=", "X-Case": "plain"})
    assert r.status_code == 200 and r.json()["ok"] is True
    e = only(started.events(1))
    assert e["direction"] == "Outgoing"
    assert e["request"]["uri"] == url
    assert e["request"]["verb"] == "GET"
    assert e["request"]["headers"]["X-Case"] == "plain"
    assert e["request"]["headers"]["User-Agent"].startswith("python-requests/")
    assert e["request"]["body"] is None and e["request"]["transfer_encoding"] is None
    assert e["response"]["status"] == 200
    assert e["response"]["headers"]["X-Api"] == "third-party"
    assert e["response"]["body"] == r.json()
    assert e["response"]["transfer_encoding"] == "json"
    assert e["request"]["time"] <= e["response"]["time"]
    # the caller's own Authorization header identifies nobody on an outgoing call
    assert e["user_id"] is None and e["company_id"] is None and e["weight"] == 1


def test_bodies_json_form_and_bytes(started: Capture, api: ThirdPartyAPI) -> None:
    s = requests.Session()
    s.post(api.url("/echo"), json={"name": "x", "n": [1, 2]})
    s.post(api.url("/echo"), data={"a": "1", "b": "é"})
    s.put(api.url("/echo"), data=b"\x00\x01binary", headers={"Content-Type": "application/octet-stream"})
    events = sorted(started.events(3), key=lambda e: e["request"]["verb"] + str(e["request"]["transfer_encoding"]))
    put, form, js = events[2], events[0], events[1]
    assert js["request"]["body"] == {"name": "x", "n": [1, 2]} and js["response"]["body"] == {"name": "x", "n": [1, 2]}
    assert base64.b64decode(form["request"]["body"]) == b"a=1&b=%C3%A9"
    assert form["request"]["transfer_encoding"] == "base64"
    assert base64.b64decode(put["request"]["body"]) == b"\x00\x01binary"


def test_sessions_made_before_start_are_captured(capture: Capture, api: ThirdPartyAPI) -> None:
    early = requests.Session()
    early.get(api.url("/json?before"))
    capture.start()
    early.get(api.url("/json?early-session"))
    requests.Session().get(api.url("/json?late-session"))
    requests.request("GET", api.url("/json?module-level"))
    uris = sorted(e["request"]["uri"] for e in capture.events(3))
    assert uris == sorted(api.url(p) for p in ("/json?early-session", "/json?late-session", "/json?module-level"))


def test_caller_gets_the_same_response_object(started: Capture, api: ThirdPartyAPI) -> None:
    seen: list[requests.Response] = []

    def hook(r: requests.Response, **_: Any) -> requests.Response:
        seen.append(r)
        return r

    r = requests.get(api.url("/json"), hooks={"response": hook})
    assert seen == [r] and seen[0] is r
    assert "iter_content" not in vars(r) and not any(k.startswith("_moesif") for k in vars(r))
    started.events(1)


def test_head_has_no_response_body(started: Capture, api: ThirdPartyAPI) -> None:
    r = requests.head(api.url("/json"))
    assert r.status_code == 200
    e = only(started.events(1))
    assert e["request"]["verb"] == "HEAD" and e["response"]["body"] is None


def test_gzip_body_is_captured_decoded(started: Capture, api: ThirdPartyAPI) -> None:
    assert requests.get(api.url("/gzip")).json() == {"zipped": True}
    assert only(started.events(1))["response"]["body"] == {"zipped": True}


def test_error_status_is_an_event(started: Capture, api: ThirdPartyAPI) -> None:
    r = requests.get(api.url("/status?code=503"))
    assert r.status_code == 503
    e = only(started.events(1))
    assert e["response"]["status"] == 503 and e["response"]["body"] == {"error": 503}


# -- streaming -------------------------------------------------------------------------------------------------


def test_streamed_response_is_not_pre_read(started: Capture, api: ThirdPartyAPI) -> None:
    # The server sends the headers and a first chunk, then holds the rest until we open the gate: if capture read
    # the body before returning, this get would wait for the gate (5 s) instead of returning at once.
    t0 = time.monotonic()
    r = requests.get(api.url("/gate?id=stream1"), stream=True)
    assert time.monotonic() - t0 < 4
    assert started.collector.count_events() == 0
    api.open_gate("stream1")
    assert r.content == b"first;second"
    e = only(started.events(1))
    assert base64.b64decode(e["response"]["body"]) == b"first;second"


def test_streamed_body_is_captured_up_to_the_cap(capture: Capture, api: ThirdPartyAPI) -> None:
    capture.start(MAX_BODY_SIZE=1000)
    with requests.get(api.url("/bytes?n=50000&chunk=4096"), stream=True) as r:
        got = b"".join(r.iter_content(3000))
    assert got == pattern(50000)
    e = only(capture.events(1))
    assert base64.b64decode(e["response"]["body"]) == pattern(1000)
    assert e["metadata"]["moesif_body_truncated"] == {"response": 50000}


def test_streamed_text_lines_still_decode(started: Capture, api: ThirdPartyAPI) -> None:
    r = requests.get(api.url("/lines?n=3"), stream=True)
    lines = list(r.iter_lines(decode_unicode=True))
    assert lines == ["line 0 é", "line 1 é", "line 2 é"]
    e = only(started.events(1))
    assert base64.b64decode(e["response"]["body"]).decode() == "line 0 é\nline 1 é\nline 2 é\n"


def test_streamed_response_closed_early_sends_what_was_read(started: Capture, api: ThirdPartyAPI) -> None:
    r = requests.get(api.url("/bytes?n=200000&chunk=1000"), stream=True)
    it = r.iter_content(1000)
    first = next(it)
    r.close()
    e = only(started.events(1))
    assert base64.b64decode(e["response"]["body"]) == first


def test_streamed_response_dropped_unread_still_gives_an_event(started: Capture, api: ThirdPartyAPI) -> None:
    r = requests.get(api.url("/bytes?n=100"), stream=True)
    assert r.status_code == 200
    del r
    gc.collect()
    e = only(started.events(1))
    assert e["response"]["status"] == 200 and e["response"]["body"] is None


def test_streamed_read_after_stop_still_works(started: Capture, api: ThirdPartyAPI) -> None:
    r = requests.get(api.url("/bytes?n=5000"), stream=True)
    moesifpythonrequest.stop(timeout=0)
    assert r.content == pattern(5000)


# -- redirects, failures ---------------------------------------------------------------------------------------


def test_redirect_gives_one_event_per_exchange(started: Capture, api: ThirdPartyAPI) -> None:
    r = requests.get(api.url("/redirect?hops=2"))
    assert r.status_code == 200 and r.url == api.url("/json") and len(r.history) == 2
    events = sorted(started.events(3), key=lambda e: e["request"]["uri"])
    assert [(e["request"]["uri"], e["response"]["status"]) for e in events] == [
        (api.url("/json"), 200),
        (api.url("/redirect?hops=1"), 302),
        (api.url("/redirect?hops=2"), 302),
    ]
    assert base64.b64decode(events[2]["response"]["body"]) == b"moved"
    assert events[2]["response"]["headers"]["Location"] == "/redirect?hops=1"


def test_redirect_not_followed_is_one_event(started: Capture, api: ThirdPartyAPI) -> None:
    r = requests.get(api.url("/redirect"), allow_redirects=False)
    assert r.status_code == 302
    assert only(started.events(1))["response"]["status"] == 302


def test_streamed_redirect(started: Capture, api: ThirdPartyAPI) -> None:
    r = requests.get(api.url("/redirect"), stream=True)
    assert r.json()["ok"] is True
    events = sorted(started.events(2), key=lambda e: e["response"]["status"])
    assert events[0]["response"]["body"]["ok"] is True and events[1]["response"]["status"] == 302


def test_connection_refused_propagates_and_gives_no_event(
    started: Capture, api: ThirdPartyAPI, closed_port: int
) -> None:
    with pytest.raises(requests.ConnectionError) as info:
        requests.get(f"http://127.0.0.1:{closed_port}/nothing")
    assert type(info.value) is requests.ConnectionError
    requests.get(api.url("/json?after-failure"))
    assert only(started.events(1))["request"]["uri"] == api.url("/json?after-failure")


def test_timeout_propagates_and_gives_no_event(started: Capture, api: ThirdPartyAPI) -> None:
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(api.url("/sleep?s=1"), timeout=0.2)
    requests.get(api.url("/json?after-timeout"))
    assert only(started.events(1))["request"]["uri"] == api.url("/json?after-timeout")


def test_hook_exception_propagates_unchanged(started: Capture, api: ThirdPartyAPI) -> None:
    class Boom(Exception):
        pass

    def hook(r: requests.Response, **_: Any) -> None:
        raise Boom("from the hook")

    with pytest.raises(Boom, match="from the hook"):
        requests.get(api.url("/json"), hooks={"response": hook})
    started.events(0)


def test_too_many_redirects_records_the_exchanges(started: Capture, api: ThirdPartyAPI) -> None:
    s = requests.Session()
    s.max_redirects = 1
    with pytest.raises(requests.TooManyRedirects) as info:
        s.get(api.url("/redirect?hops=3"))
    # every hop the exception still reaches is recorded: the last one, and with a recent requests the first one too
    # (older ones list `last` in its own history instead of the first hop)
    last = info.value.response
    assert last is not None
    events = started.events(len({id(r) for r in (*last.history, last)}))
    assert {e["response"]["status"] for e in events} == {302}


# -- options ---------------------------------------------------------------------------------------------------


def test_callbacks_get_the_prepared_request_and_the_response(capture: Capture, api: ThirdPartyAPI) -> None:
    calls: list[tuple[str, Any, Any]] = []

    def cb(name: str, value: Any) -> Any:
        def f(req: Any, res: Any) -> Any:
            calls.append((name, req, res))
            return value

        return f

    capture.start(
        IDENTIFY_USER_OUTGOING=cb("user", "u-1"),
        IDENTIFY_COMPANY_OUTGOING=cb("company", "c-1"),
        GET_SESSION_TOKEN_OUTGOING=cb("session", "tok"),
        GET_METADATA_OUTGOING=lambda req, res: {"status": res.status_code, "path": req.path_url},
        SKIP_OUTGOING=lambda req, res: "skip-me" in req.url,
    )
    r = requests.get(api.url("/json?x=1"))
    requests.get(api.url("/json?skip-me"))
    e = only(capture.events(1))
    assert (e["user_id"], e["company_id"], e["session_token"]) == ("u-1", "c-1", "tok")
    assert e["metadata"] == {"status": 200, "path": "/json?x=1"}
    assert {name for name, _, _ in calls} == {"user", "company", "session"}
    for _, req, res in calls:
        assert isinstance(req, requests.PreparedRequest) and res is r


def test_raising_callbacks_do_not_affect_the_call(
    capture: Capture, api: ThirdPartyAPI, moesif_log: pytest.LogCaptureFixture
) -> None:
    def boom(req: Any, res: Any) -> Any:
        raise RuntimeError("callback bug")

    capture.start(
        IDENTIFY_USER_OUTGOING=boom,
        GET_METADATA_OUTGOING=boom,
        SKIP_OUTGOING=boom,
        IDENTIFY_COMPANY_OUTGOING=lambda req, res: "acme",
    )
    r = requests.get(api.url("/json"))
    assert r.json()["ok"] is True
    e = only(capture.events(1))
    assert e["user_id"] is None and e["metadata"] is None and e["company_id"] == "acme"
    messages = [rec.getMessage() for rec in moesif_log.records if rec.levelno == logging.WARNING]
    assert any("IDENTIFY_USER_OUTGOING" in m for m in messages)
    assert any("SKIP_OUTGOING" in m for m in messages)


def test_log_body_outgoing_false(capture: Capture, api: ThirdPartyAPI) -> None:
    capture.start(LOG_BODY_OUTGOING=False)
    requests.post(api.url("/echo"), json={"a": 1})
    r = requests.get(api.url("/bytes?n=3000"), stream=True)  # not teed: the event does not wait for the body
    e1, e2 = capture.events(2)
    assert r.content == pattern(3000)
    for e in (e1, e2):
        assert e["request"]["body"] is None and e["response"]["body"] is None


def test_masking_is_shared_with_the_core(capture: Capture, api: ThirdPartyAPI) -> None:
    capture.start(REQUEST_HEADER_MASKS=["X-Secret"], RESPONSE_BODY_MASKS=["token"])
    requests.get(api.url("/json"), headers={"X-Secret": "hunter2"})
    e = only(capture.events(1))
    assert "x-secret" not in {k.lower() for k in e["request"]["headers"]}  # removed, as the originals did
    assert "token" not in e["response"]["body"] and e["response"]["body"]


# -- no self-capture -------------------------------------------------------------------------------------------


def test_own_calls_are_never_captured(started: Capture, api: ThirdPartyAPI) -> None:
    collector = started.collector
    # the user calling the collector's URL directly, a profile call through the core's client, from a thread pool
    requests.get(collector.url + "/v1/config", headers={"X-Moesif-Application-Id": "outgoing-test"})
    MoesifAPIClient("outgoing-test", base_uri=collector.url).api.update_user({"user_id": "alice"})
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: requests.get(api.url(f"/json?pool={i}")).status_code, range(8)))
    assert results == [200] * 8
    events = started.events(8)  # the ingestion batches themselves went out through the same patched send
    assert all(e["request"]["uri"].startswith(api.url("/json?pool=")) for e in events)
    # a Moesif SDK client with another BASE_URI (a secure proxy) is recognised by the header it always sends
    with requests.Session() as s:
        s.headers["X-Moesif-Application-Id"] = "other-app"
        s.get(api.url("/json?sdk-header"))
    started.events(8)
    assert started.collector.users()  # the profile call did reach the collector


def test_events_are_json_serialisable_with_odd_metadata(capture: Capture, api: ThirdPartyAPI) -> None:
    capture.start(GET_METADATA_OUTGOING=lambda req, res: {"when": time, "n": 1})
    requests.get(api.url("/json"))
    e = only(capture.events(1))
    assert e["metadata"]["n"] == 1
    json.dumps(e)


def test_misuse_fails_as_without_capture(started: Capture, api: ThirdPartyAPI) -> None:
    with pytest.raises(ValueError, match="PreparedRequests"):
        requests.Session().send(requests.Request("GET", api.url("/json")))  # type: ignore[arg-type]
    started.events(0)
