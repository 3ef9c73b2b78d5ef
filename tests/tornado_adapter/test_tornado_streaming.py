"""``flush()``ed and streamed responses: they stay streamed, their body is captured up to the cap."""

from __future__ import annotations

import asyncio
import base64
import threading
from typing import Any, Optional

import requests
import tornado.web


def test_flushed_chunks_are_sent_at_once_and_captured(collector: Any, serve: Any, make_middleware: Any) -> None:
    gate: dict[str, Optional[asyncio.Event]] = {"event": None}
    first_flushed = threading.Event()

    class Stream(tornado.web.RequestHandler):
        async def get(self) -> None:
            gate["event"] = asyncio.Event()
            self.set_header("Content-Type", "text/plain")
            self.write(b"first chunk\n")
            await self.flush()
            first_flushed.set()
            await gate["event"].wait()  # type: ignore[union-attr]  # held open until the client has read the first chunk
            self.write(b"second chunk\n")
            await self.flush()
            self.write(b"last")

    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/stream", Stream)], log_function=mw.log_event))
    with requests.get(server.url + "/stream", stream=True) as r:
        assert r.headers["Transfer-Encoding"] == "chunked"
        tid = r.headers["X-Moesif-Transaction-Id"]
        chunks = r.iter_content(chunk_size=None)
        assert next(chunks) == b"first chunk\n"  # received while the handler is still running
        assert first_flushed.wait(10) and collector.count_events() == 0  # the handler is parked at the gate
        server.call_soon(lambda: gate["event"].set())  # type: ignore[union-attr]
        rest = b"".join(chunks)
    assert rest == b"second chunk\nlast"
    (event,) = collector.wait_for_events(1)
    assert event["transaction_id"] == tid
    assert event["response"]["status"] == 200
    assert event["response"]["transfer_encoding"] == "base64"
    assert base64.b64decode(event["response"]["body"]) == b"first chunk\nsecond chunk\nlast"
    assert event["response"]["headers"]["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in event["response"]["headers"]
    assert event["metadata"] is None


def test_streamed_json_is_parsed_when_whole(collector: Any, serve: Any, make_middleware: Any) -> None:
    class JsonStream(tornado.web.RequestHandler):
        async def get(self) -> None:
            self.set_header("Content-Type", "application/json")
            self.write("[")
            for i in range(5):
                self.write(("," if i else "") + f'{{"i": {i}}}')
                await self.flush()
            self.write("]")

    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/", JsonStream)], log_function=mw.log_event))
    r = requests.get(server.url + "/")
    assert r.json() == [{"i": i} for i in range(5)]
    (event,) = collector.wait_for_events(1)
    assert event["response"]["body"] == [{"i": i} for i in range(5)]
    assert event["response"]["transfer_encoding"] == "json"


def test_a_long_stream_is_captured_up_to_the_cap(collector: Any, serve: Any, make_middleware: Any) -> None:
    class Download(tornado.web.RequestHandler):
        async def get(self) -> None:
            for i in range(50):
                self.write(bytes([65 + i % 26]) * 1000)
                await self.flush()

    mw = make_middleware(MAX_BODY_SIZE=2500)
    server = serve(tornado.web.Application([(r"/dl", Download)], log_function=mw.log_event))
    r = requests.get(server.url + "/dl")
    assert len(r.content) == 50_000  # the client gets everything
    (event,) = collector.wait_for_events(1)
    assert event["response"]["transfer_encoding"] == "base64"
    assert base64.b64decode(event["response"]["body"]) == r.content[:2500]
    assert event["metadata"] == {"moesif_body_truncated": {"response": 50_000}}


def test_a_handler_raising_after_flush_is_logged_as_sent(collector: Any, serve: Any, make_middleware: Any) -> None:
    class HalfWay(tornado.web.RequestHandler):
        async def get(self) -> None:
            self.write(b"partial ")
            await self.flush()
            raise RuntimeError("failed after the headers went out")

    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/", HalfWay)], log_function=mw.log_event))
    r = requests.get(server.url + "/")
    assert r.status_code == 200  # the status line was already sent
    (event,) = collector.wait_for_events(1)
    assert event["response"]["status"] == 200
    assert base64.b64decode(event["response"]["body"]) == r.content == b"partial "


def test_render_and_redirect(collector: Any, serve: Any, make_middleware: Any, tmp_path: Any) -> None:
    (tmp_path / "page.html").write_text("<p>{{ name }}</p>")

    class Page(tornado.web.RequestHandler):
        def get(self) -> None:
            self.render("page.html", name="tornado")

    class Moved(tornado.web.RequestHandler):
        def get(self) -> None:
            self.redirect("/page")

    mw = make_middleware()
    app = tornado.web.Application(
        [(r"/page", Page), (r"/moved", Moved)], log_function=mw.log_event, template_path=str(tmp_path)
    )
    server = serve(app)
    r = requests.get(server.url + "/moved")
    assert r.text == "<p>tornado</p>"
    moved, page = collector.wait_for_events(2)
    assert moved["response"]["status"] == 302
    assert moved["response"]["headers"]["Location"] == "/page"
    assert page["response"]["status"] == 200
    assert base64.b64decode(page["response"]["body"]) == b"<p>tornado</p>"


def test_stream_request_body_handler(collector: Any, serve: Any, make_middleware: Any) -> None:
    @tornado.web.stream_request_body
    class Upload(tornado.web.RequestHandler):
        def prepare(self) -> None:
            self.received = 0

        def data_received(self, chunk: bytes) -> None:
            self.received += len(chunk)

        def put(self) -> None:
            self.write({"received": self.received})

    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/upload", Upload)], log_function=mw.log_event))
    r = requests.put(server.url + "/upload", data=iter([b"x" * 1000] * 5))  # chunked upload
    assert r.json() == {"received": 5000}
    (event,) = collector.wait_for_events(1)
    # Tornado keeps no body for a streaming handler: none in the event, the rest is as usual
    assert event["request"]["body"] is None and event["request"]["headers"]["Transfer-Encoding"] == "chunked"
    assert event["response"]["body"] == {"received": 5000}


def test_websocket_upgrade(collector: Any, serve: Any, make_middleware: Any) -> None:
    import tornado.websocket

    class Echo(tornado.websocket.WebSocketHandler):
        def on_message(self, message: Any) -> None:
            self.write_message(message)

    mw = make_middleware()
    server = serve(tornado.web.Application([(r"/ws", Echo)], log_function=mw.log_event))

    async def talk() -> Any:
        conn = await tornado.websocket.websocket_connect(server.url.replace("http", "ws") + "/ws")
        await conn.write_message("ping")
        reply = await conn.read_message()
        conn.close()
        return reply

    assert asyncio.run(talk()) == "ping"
    (event,) = collector.wait_for_events(1)
    assert event["response"]["status"] == 101
    assert event["request"]["headers"]["Upgrade"].lower() == "websocket"
    assert event["response"]["body"] is None
