"""Outgoing capture of ``httpx`` calls (sync ``Client`` and ``AsyncClient``), behind the same option."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import pytest
from outgoing_helpers import Capture, ThirdPartyAPI, pattern


def only(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(events) == 1
    return events[0]


def test_module_level_and_client_calls(started: Capture, api: ThirdPartyAPI) -> None:
    r = httpx.get(api.url("/json?a=1"), headers={"X-Case": "httpx"})
    assert r.json()["ok"] is True
    with httpx.Client() as client:
        client.post(api.url("/echo"), json={"name": "x"})
    events = sorted(started.events(2), key=lambda e: e["request"]["verb"])
    get, post = events
    assert get["direction"] == "Outgoing" and get["request"]["uri"] == api.url("/json?a=1")
    assert get["request"]["headers"]["X-Case"] == "httpx"
    assert get["response"]["status"] == 200 and get["response"]["body"]["ok"] is True
    assert get["response"]["headers"]["X-Api"] == "third-party"
    assert post["request"]["body"] == {"name": "x"} and post["response"]["body"] == {"name": "x"}


def test_client_made_before_start(capture: Capture, api: ThirdPartyAPI) -> None:
    client = httpx.Client()
    client.get(api.url("/json?before"))
    capture.start()
    client.get(api.url("/json?after"))
    client.close()
    assert only(capture.events(1))["request"]["uri"] == api.url("/json?after")


def test_stream_is_not_pre_read_and_is_capped(capture: Capture, api: ThirdPartyAPI) -> None:
    capture.start(MAX_BODY_SIZE=1000)
    with httpx.Client() as client:
        t0 = time.monotonic()
        with client.stream("GET", api.url("/gate?id=httpx1")) as r:
            assert time.monotonic() - t0 < 4
            assert capture.collector.count_events() == 0
            api.open_gate("httpx1")
            assert r.read() == b"first;second"
        with client.stream("GET", api.url("/bytes?n=30000&chunk=4096")) as r:
            got = b"".join(r.iter_bytes(chunk_size=3000))
    assert got == pattern(30000)
    big, gate = sorted(capture.events(2), key=lambda e: e["request"]["uri"])  # /bytes < /gate
    assert base64.b64decode(gate["response"]["body"]) == b"first;second"
    assert base64.b64decode(big["response"]["body"]) == pattern(1000)
    assert big["metadata"]["moesif_body_truncated"] == {"response": 30000}


def test_stream_tail_after_close_is_kept(started: Capture, api: ThirdPartyAPI) -> None:
    # httpx closes the response inside the last raw read, before the chunker hands out the remainder
    with httpx.Client() as client, client.stream("GET", api.url("/bytes?n=2500&chunk=1000")) as r:
        got = b"".join(r.iter_bytes(chunk_size=2000))
    assert got == pattern(2500)
    assert base64.b64decode(only(started.events(1))["response"]["body"]) == pattern(2500)


def test_gzip_and_text(started: Capture, api: ThirdPartyAPI) -> None:
    assert httpx.get(api.url("/gzip")).json() == {"zipped": True}
    with httpx.stream("GET", api.url("/lines?n=2")) as r:
        assert list(r.iter_lines()) == ["line 0 é", "line 1 é"]
    events = sorted(started.events(2), key=lambda e: e["request"]["uri"])
    assert events[0]["response"]["body"] == {"zipped": True}
    assert base64.b64decode(events[1]["response"]["body"]).decode() == "line 0 é\nline 1 é\n"


def test_redirect_one_event_per_exchange(started: Capture, api: ThirdPartyAPI) -> None:
    r = httpx.get(api.url("/redirect?hops=2"), follow_redirects=True)
    assert r.status_code == 200 and len(r.history) == 2
    events = sorted(started.events(3), key=lambda e: e["request"]["uri"])
    assert [(e["request"]["uri"], e["response"]["status"]) for e in events] == [
        (api.url("/json"), 200),
        (api.url("/redirect?hops=1"), 302),
        (api.url("/redirect?hops=2"), 302),
    ]


def test_failures_propagate_without_events(started: Capture, api: ThirdPartyAPI, closed_port: int) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{closed_port}/")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(api.url("/sleep?s=1"), timeout=0.2)
    httpx.get(api.url("/json?after"))
    assert only(started.events(1))["request"]["uri"] == api.url("/json?after")


def test_callbacks_get_httpx_objects(capture: Capture, api: ThirdPartyAPI) -> None:
    calls: list[tuple[Any, Any]] = []

    def user(req: Any, res: Any) -> str:
        calls.append((req, res))
        return "u-httpx"

    capture.start(
        IDENTIFY_USER_OUTGOING=user,
        SKIP_OUTGOING=lambda req, res: req.url.path == "/status",
        GET_METADATA_OUTGOING=lambda req, res: 1 / 0,
    )
    r = httpx.get(api.url("/json"))
    httpx.get(api.url("/status?code=500"))
    e = only(capture.events(1))
    assert e["user_id"] == "u-httpx" and e["metadata"] is None
    assert isinstance(calls[0][0], httpx.Request) and calls[0][1] is r


def test_async_client(started: Capture, api: ThirdPartyAPI) -> None:
    async def main() -> tuple[Any, bytes, bytes]:
        async with httpx.AsyncClient() as client:
            r = await client.get(api.url("/json?async"))
            t0 = time.monotonic()
            async with client.stream("GET", api.url("/gate?id=async1")) as s:
                assert time.monotonic() - t0 < 4
                api.open_gate("async1")
                streamed = await s.aread()
            async with client.stream("GET", api.url("/bytes?n=5000&chunk=700")) as s:
                chunks = [c async for c in s.aiter_bytes(1024)]
            return r.json(), streamed, b"".join(chunks)

    doc, streamed, chunked = asyncio.run(main())
    assert doc["ok"] is True and streamed == b"first;second" and chunked == pattern(5000)
    events = sorted(started.events(3), key=lambda e: e["request"]["uri"])
    bytes_e, gate_e, json_e = events
    assert json_e["response"]["body"]["ok"] is True
    assert base64.b64decode(gate_e["response"]["body"]) == b"first;second"
    assert base64.b64decode(bytes_e["response"]["body"]) == pattern(5000)


def test_async_failure_propagates(started: Capture, closed_port: int) -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{closed_port}/")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(main())
    started.events(0)
