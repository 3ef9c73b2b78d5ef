"""Helpers for the moesif_aiohttp tests: a real aiohttp server (``AppRunner`` + ``TCPSite``) on 127.0.0.1, on an
event loop of its own in a thread, and the test apps. (Not named ``conftest``: test modules import it by this
unique name.)"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any, Coroutine, Optional

from aiohttp import web

APP_ID = "aiohttp-test-app"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class AiohttpServer:
    """``app`` served by aiohttp's own server on 127.0.0.1 (a free port), its loop in a daemon thread."""

    def __init__(self, app: web.Application, **runner_kwargs: Any) -> None:
        self.app = app
        self.runner_kwargs = runner_kwargs
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.url = ""
        self._runner: Optional[web.AppRunner] = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="aiohttp-test-server", daemon=True)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        """Run ``coro`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, **self.runner_kwargs)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> AiohttpServer:
        self._thread.start()
        self.run(self._start())
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self.run(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class _Transport:
    """An in-memory socket: keeps what the server writes."""

    def __init__(self) -> None:
        self.out = bytearray()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 80)}.get(name, default)

    def write(self, data: Any) -> None:
        self.out += data

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.out += chunk

    def is_closing(self) -> bool:
        return False


class _Protocol:
    """What aiohttp's request, ``StreamReader`` and ``StreamWriter`` read of the server's connection handler."""

    max_field_size = 8190
    max_line_length = 8190
    max_headers = 128
    peername = ("127.0.0.1", 50000)
    sockname = ("127.0.0.1", 80)
    ssl_context = None
    writing_paused = False
    _paused = False

    def __init__(self) -> None:
        self.transport = _Transport()

    async def _drain_helper(self) -> None:
        return None

    def resume_reading(self, *args: Any, **kwargs: Any) -> None:
        return None

    def pause_reading(self, *args: Any, **kwargs: Any) -> None:
        return None


async def call_in_process(
    app: web.Application, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[bytes, list[bytes], bytes]:
    """Serve one request to ``app`` (frozen) without a socket, as aiohttp's connection handler does: the response
    prepared and written to an in-memory transport. Returns (status line, header lines, body) as written."""
    from aiohttp.http_writer import StreamWriter
    from aiohttp.streams import StreamReader
    from aiohttp.test_utils import make_mocked_request

    loop = asyncio.get_running_loop()
    protocol = _Protocol()
    payload = StreamReader(protocol, 2**16, loop=loop)  # type: ignore[arg-type]
    if body:
        payload.feed_data(body)
    payload.feed_eof()
    writer = StreamWriter(protocol, loop)  # type: ignore[arg-type]
    # the parsed request line and headers (by their private name: the public .message is deprecated)
    message = make_mocked_request(method, path, headers=headers, app=app)._message
    task: Any = asyncio.current_task()
    request = web.Request(message, payload, protocol, writer, task, loop)  # type: ignore[arg-type]
    try:
        response = await app._handle(request)
    except web.HTTPException as exc:  # what aiohttp's connection handler does with one
        response = exc
    await response.prepare(request)
    await response.write_eof()
    head, _, sent_body = bytes(protocol.transport.out).partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    return status, lines, sent_body
