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

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.url = ""
        self._runner: Optional[web.AppRunner] = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="aiohttp-test-server", daemon=True)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        """Run ``coro`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app)
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
