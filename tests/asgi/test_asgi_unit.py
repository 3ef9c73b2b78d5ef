"""MoesifMiddleware driven directly with hand-built scope, receive and send: the edge cases of the ASGI protocol
(exceptions, cancellation, disconnects, pathsend, pass-through scopes) and the callback machinery. What the
middleware hands to the core is observed by wrapping ``agent.capture`` (the capture still goes through)."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
from typing import Any, Dict, List, MutableMapping, Optional

import pytest
from asgi_support import APP_ID

import moesif_core
from moesif_core import RawCapture
from moesifasgi import MoesifMiddleware, run_in_thread

Message = Dict[str, Any]


def http_scope(method: str = "GET", path: str = "/x", headers: Optional[List[Any]] = None) -> Dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"q=1",
        "headers": headers if headers is not None else [(b"host", b"api.test")],
        "client": ("2001:db8::1", 4000),
        "server": ("10.0.0.5", 8443),
    }


class Spy:
    def __init__(self, mw: MoesifMiddleware) -> None:
        self.raws: List[RawCapture] = []
        real = mw.agent.capture

        def capture(raw: RawCapture) -> bool:
            self.raws.append(raw)
            return real(raw)

        mw.agent.capture = capture  # type: ignore[method-assign]


_base_uri = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _to_the_collector(collector: Any) -> None:
    """Send to the real collector, so that shutting the middlewares down at teardown is quick."""
    global _base_uri
    _base_uri = collector.url


def make(app: Any, **settings: Any) -> tuple[MoesifMiddleware, Spy]:
    mw = MoesifMiddleware(app, settings={"APPLICATION_ID": APP_ID, "BASE_URI": _base_uri, **settings})
    return mw, Spy(mw)


async def drive(mw: Any, scope: Dict[str, Any], incoming: Optional[List[Message]] = None) -> List[Message]:
    """Run one call; ``incoming`` are the messages ``receive`` returns, then ``http.disconnect`` forever."""
    queue = list(incoming if incoming is not None else [{"type": "http.request", "body": b"", "more_body": False}])
    sent: List[Message] = []

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await mw(scope, receive, send)
    return sent


async def respond(send: Any, status: int = 200, body: bytes = b"ok", headers: Optional[List[Any]] = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers if headers is not None else [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def test_exception_propagates_unchanged_and_is_a_500() -> None:
    error = ValueError("from the app")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise error

    mw, spy = make(app)
    with pytest.raises(ValueError) as info:
        asyncio.run(drive(mw, http_scope()))
    assert info.value is error
    assert info.traceback[-1].name == "app"  # raised where the app raised it
    (raw,) = spy.raws
    assert raw.response_status == 500
    assert list(raw.response_headers) == []  # nothing was sent to the client by the app


def test_exception_after_the_response_started_keeps_its_status() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"par", "more_body": True})
        raise KeyError("late")

    mw, spy = make(app)
    with pytest.raises(KeyError):
        asyncio.run(drive(mw, http_scope()))
    (raw,) = spy.raws
    assert raw.response_status == 201
    assert raw.response_body is not None and raw.response_body.data() == b"par"


def test_app_returning_without_a_response_is_a_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    mw, spy = make(app)
    assert asyncio.run(drive(mw, http_scope())) == []
    assert [r.response_status for r in spy.raws] == [500]


def test_disconnect_before_any_response_is_a_499_and_reaches_the_app() -> None:
    seen: List[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect":
                break
        await respond(send)  # too late: the server drops it, and the event is not sent twice

    mw, spy = make(app)
    asyncio.run(
        drive(
            mw,
            http_scope("POST"),
            [
                {"type": "http.request", "body": b"ab", "more_body": True},
                {"type": "http.request", "body": b"cd", "more_body": False},
            ],
        )
    )
    assert seen == ["http.request", "http.request", "http.disconnect"]
    (raw,) = spy.raws
    assert raw.response_status == 499
    assert raw.request_body is not None and raw.request_body.data() == b"abcd"


def test_cancelled_request_is_recorded_once_and_cancellation_propagates() -> None:
    started = asyncio.Event

    async def main() -> List[RawCapture]:
        go = started()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            go.set()
            await asyncio.sleep(3600)

        mw, spy = make(app, GET_METADATA=lambda req, resp: {"status": resp.status_code})
        task = asyncio.ensure_future(drive(mw, http_scope()))
        await go.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return spy.raws

    (raw,) = asyncio.run(main())
    assert raw.response_status == 200
    assert raw.metadata == {"status": 200}


def test_cancelled_request_with_an_async_skip_is_not_sent() -> None:
    async def main() -> List[RawCapture]:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await asyncio.sleep(3600)

        async def skip(req: Any, resp: Any) -> bool:
            return False

        mw, spy = make(app, SKIP=skip)
        task = asyncio.ensure_future(drive(mw, http_scope()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return spy.raws

    assert asyncio.run(main()) == []


def test_cancelled_before_any_response_is_a_499() -> None:
    async def main() -> List[RawCapture]:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await asyncio.sleep(3600)

        mw, spy = make(app)
        task = asyncio.ensure_future(drive(mw, http_scope()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return spy.raws

    assert [r.response_status for r in asyncio.run(main())] == [499]


def test_pathsend_ends_the_call() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.pathsend", "path": "/tmp/file"})

    mw, spy = make(app)
    sent = asyncio.run(drive(mw, http_scope()))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert [r.response_status for r in spy.raws] == [200]


@pytest.mark.parametrize("kind", ["websocket", "lifespan"])
def test_other_scopes_pass_through_untouched(kind: str) -> None:
    got: Dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.update(scope=scope, receive=receive, send=send)

    mw, spy = make(app)

    async def receive() -> Message:
        return {}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    scope = {"type": kind, "asgi": {"version": "3.0"}}
    asyncio.run(mw(scope, receive, send))
    assert got == {"scope": scope, "receive": receive, "send": send}
    assert spy.raws == []


def test_messages_are_not_mutated_and_the_header_is_added() -> None:
    app_headers = [(b"content-type", b"application/json"), (b"x-app", b"1")]
    start = {"type": "http.response.start", "status": 200, "headers": app_headers}
    body = {"type": "http.response.body", "body": b'{"a":1}'}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start)
        await send(body)

    mw, spy = make(app)
    sent = asyncio.run(drive(mw, http_scope()))
    assert start["headers"] is app_headers and app_headers == [(b"content-type", b"application/json"), (b"x-app", b"1")]
    assert sent[1] is body
    (raw,) = spy.raws
    tid = raw.transaction_id
    assert tid is not None
    assert sent[0]["headers"] == [*app_headers, (b"x-moesif-transaction-id", tid.encode())]
    assert list(raw.response_headers)[-1] == ("X-Moesif-Transaction-Id", tid)
    assert raw.uri == "https://api.test/x?q=1"
    assert raw.peer_ip == "2001:db8::1"


def test_uri_without_a_host_header_uses_the_server_address() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send)

    mw, spy = make(app)
    scope = http_scope(headers=[])
    del scope["raw_path"]
    scope["path"] = "/a b/ü"
    asyncio.run(drive(mw, scope))
    assert spy.raws[0].uri == "https://10.0.0.5:8443/a%20b/%C3%BC?q=1"


def test_event_built_from_the_capture_matches_the_wire(moesif_log: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await respond(send, 201, b'{"id": 7}', [(b"content-type", b"application/json")])

    mw, spy = make(app)
    asyncio.run(
        drive(
            mw,
            http_scope("POST", headers=[(b"host", b"api.test"), (b"x-forwarded-for", b"::1")]),
            [
                {"type": "http.request", "body": b'{"a":', "more_body": True},
                {"type": "http.request", "body": b" [1]}", "more_body": False},
            ],
        )
    )
    event = mw.agent.builder.build(spy.raws[0])
    assert event is not None
    assert event["request"]["body"] == {"a": [1]}
    assert event["request"]["ip_address"] == "::1"
    assert event["response"]["body"] == {"id": 7}
    assert event["response"]["status"] == 201
    assert event["request"]["headers"]["X-Moesif-Transaction-Id"] == event["transaction_id"]


def test_blocking_sync_callback_moves_to_a_thread(moesif_log: pytest.LogCaptureFixture) -> None:
    threads: List[str] = []
    release = threading.Event()

    def identify_user(req: Any, resp: Any) -> str:
        threads.append(threading.current_thread().name)
        release.wait(0.05)  # blocks like a slow lookup would
        return "u"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send)

    mw, spy = make(app, IDENTIFY_USER=identify_user)

    async def main() -> None:
        for _ in range(3):
            await drive(mw, http_scope())

    asyncio.run(main())
    assert threads[0] == threading.current_thread().name  # the first call ran on the loop: it was timed
    assert all(t != threads[0] for t in threads[1:])  # then in a worker thread
    assert [r.user_id for r in spy.raws] == ["u", "u", "u"]
    assert any("IDENTIFY_USER callback took" in r.getMessage() for r in moesif_log.records)


def test_run_in_thread_never_runs_on_the_loop() -> None:
    threads: Dict[str, str] = {}

    @run_in_thread
    def get_session_token(req: Any, resp: Any) -> str:
        threads["token"] = threading.current_thread().name
        return "tok"

    @run_in_thread
    def identify_company(req: Any, resp: Any) -> str:
        threads["company"] = threading.current_thread().name
        raise LookupError("down")

    @run_in_thread
    def get_metadata(req: Any, resp: Any) -> Any:
        threads["metadata"] = threading.current_thread().name
        return asyncio.sleep(0, result={"awaited": True})  # an awaitable: awaited back on the loop

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send)

    mw, spy = make(
        app, GET_SESSION_TOKEN=get_session_token, IDENTIFY_COMPANY=identify_company, GET_METADATA=get_metadata
    )
    asyncio.run(drive(mw, http_scope()))
    loop_thread = threading.current_thread().name
    assert len(set(threads.values())) == 1 and loop_thread not in threads.values()  # one hop for all three
    (raw,) = spy.raws
    assert (raw.session_token, raw.company_id, raw.metadata) == ("tok", None, {"awaited": True})


def test_awaitables_returned_by_plain_callables_are_awaited() -> None:
    async def company(req: Any, resp: Any, suffix: str) -> str:
        await asyncio.sleep(0)
        return "co-" + suffix

    class Metadata:
        async def __call__(self, req: Any, resp: Any) -> Dict[str, Any]:
            return {"from": "callable object"}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send)

    mw, spy = make(
        app,
        IDENTIFY_COMPANY=functools.partial(company, suffix="p"),
        GET_SESSION_TOKEN=lambda req, resp: company(req, resp, "lambda"),
        GET_METADATA=Metadata(),
    )
    asyncio.run(drive(mw, http_scope()))
    (raw,) = spy.raws
    assert (raw.company_id, raw.session_token, raw.metadata) == ("co-p", "co-lambda", {"from": "callable object"})


def test_settings_are_validated_at_construction() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    with pytest.raises(ValueError, match="APPLICATION_ID"):
        MoesifMiddleware(app, settings={})
    with pytest.raises(ValueError, match="APPLICATION_ID"):
        MoesifMiddleware(app)
    with pytest.raises(TypeError, match="LOG_BODY"):
        MoesifMiddleware(app, settings={"APPLICATION_ID": "x", "LOG_BODY": "yes"})
    with pytest.raises(ValueError, match="IDENTIFY_USER"):
        MoesifMiddleware(app, settings={"APPLICATION_ID": "x", "IDENTIFY_USR": lambda r, s: None})
    with pytest.raises(TypeError, match="SKIP"):
        MoesifMiddleware(app, settings={"APPLICATION_ID": "x", "SKIP": True})


def test_defaults_are_the_originals() -> None:
    mw = MoesifMiddleware(None, settings={"APPLICATION_ID": "x"})
    mw.agent.remote.stop()
    s = mw.moesif_settings
    assert (s.batch_size, s.event_batch_timeout, s.event_queue_size, s.base_uri) == (
        100,
        1,
        1_000_000,
        "https://api.moesif.net",
    )
    assert mw.settings == {"APPLICATION_ID": "x"}


def test_no_app_is_usable_for_profiles_but_not_as_an_app() -> None:
    mw = MoesifMiddleware(None, settings={"APPLICATION_ID": "x", "BASE_URI": "http://127.0.0.1:9"})
    with pytest.raises(RuntimeError, match="without an app"):
        asyncio.run(drive(mw, http_scope()))


def test_capture_outgoing_requests_without_moesifpythonrequest_warns(
    monkeypatch: pytest.MonkeyPatch, moesif_log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "moesifpythonrequest", None)  # makes the import fail
    MoesifMiddleware(None, settings={"APPLICATION_ID": "x", "CAPTURE_OUTGOING_REQUESTS": True})
    assert any(
        "moesifpythonrequest is not installed" in r.getMessage()
        and f"pip install moesifpythonrequest=={moesif_core.__version__} " in r.getMessage()
        for r in moesif_log.records
        if r.levelno == logging.WARNING
    )


def test_native_cancel_while_awaiting_a_callback_still_records() -> None:
    async def main() -> List[RawCapture]:
        in_callback = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await respond(send)

        async def identify_company(req: Any, resp: Any) -> str:
            return "acme"

        async def get_metadata(req: Any, resp: Any) -> Dict[str, Any]:
            in_callback.set()
            await asyncio.sleep(3600)
            return {}

        mw, spy = make(app, IDENTIFY_COMPANY=identify_company, GET_METADATA=get_metadata)
        task = asyncio.ensure_future(drive(mw, http_scope()))
        await in_callback.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return spy.raws

    (raw,) = asyncio.run(main())
    assert raw.company_id == "acme" and raw.metadata is None and raw.response_status == 200


def test_a_scope_we_cannot_read_is_served_untouched(moesif_log: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send)

    mw, spy = make(app)
    scope = http_scope()
    del scope["headers"]  # not a valid ASGI scope; the app may cope, we must not be the one failing it
    sent = asyncio.run(drive(mw, scope))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert spy.raws == []
    assert any("served without capture" in r.getMessage() for r in moesif_log.records)


def test_no_client_in_the_scope_is_fine() -> None:
    """``client`` may be None (a unix socket); the original raised on it."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send)

    mw, spy = make(app)
    scope = http_scope()
    scope["client"] = None
    asyncio.run(drive(mw, scope))
    (raw,) = spy.raws
    assert raw.peer_ip is None
    event = mw.agent.builder.build(raw)
    assert event is not None and event["request"]["ip_address"] is None
