"""What ``benchmarks/run_all.py`` needs to measure moesif-aiohttp against the original moesif-aiohttp 1.1.0.

- :func:`ensure_orig_venv`: ``/tmp/bench-orig-aiohttp``, a venv with ``moesif-aiohttp==1.1.0`` and the aiohttp version
  installed here (so both sides run the same framework), created when missing.
- :func:`caller`: one in-process request to an aiohttp ``web.Application``, the way aiohttp's server runs it minus
  the socket: a ``web.Request`` over the parsed request line and headers (made once with
  ``aiohttp.test_utils.make_mocked_request``), a real ``StreamReader`` holding the body and aiohttp's real
  ``StreamWriter`` over an in-memory transport, handed to the application (routing and the middleware chain), then the
  returned response prepared and written to the end, as aiohttp's request handler does.

Imports only the standard library at module level (``run_all`` imports it in every child, the originals' included).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

ORIG_VENV = Path("/tmp/bench-orig-aiohttp")


def orig_spec() -> list[str]:
    return ["moesif-aiohttp==1.1.0", f"aiohttp=={version('aiohttp')}"]


def ensure_orig_venv() -> Path:
    python = ORIG_VENV / "bin" / "python"
    probe = [str(python), "-c", "import moesif_aiohttp, aiohttp, moesifapi"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    spec = orig_spec()
    print(f"creating {ORIG_VENV} with {' '.join(spec)} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(ORIG_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *spec], check=True)
    return python


class _Transport:
    """Where the response goes: nowhere (an open socket that takes every byte at once)."""

    _extra: Dict[str, Any] = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: Any) -> None:
        return None

    def writelines(self, data: Any) -> None:
        return None

    def is_closing(self) -> bool:
        return False


class _Protocol:
    """The attributes of aiohttp's ``RequestHandler`` a request, its ``StreamReader`` and ``StreamWriter`` read."""

    max_field_size = 8190
    max_line_length = 8190
    max_headers = 128
    peername = ("127.0.0.1", 50000)
    sockname = ("127.0.0.1", 8000)
    ssl_context = None
    writing_paused = False
    _paused = False

    def __init__(self) -> None:
        self.transport = _Transport()
        self.writer: Optional[Any] = None

    async def _drain_helper(self) -> None:
        return None

    def resume_reading(self, *args: Any, **kwargs: Any) -> None:
        return None

    def pause_reading(self, *args: Any, **kwargs: Any) -> None:
        return None


def caller(app: Any, method: str, path: str, headers: Dict[str, str], body: bytes) -> Callable[[], Any]:
    """``one()``: a coroutine function serving one request to ``app`` (frozen here) in-process."""
    from aiohttp import web
    from aiohttp.http_writer import StreamWriter
    from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
    from aiohttp.test_utils import make_mocked_request

    app.freeze()
    protocol = _Protocol()
    # the parsed request line and headers, as aiohttp's parser hands them over (immutable: one for every request)
    message = make_mocked_request(method, path, headers=headers, app=app)._message  # public .message: deprecated

    async def one() -> None:
        loop = asyncio.get_running_loop()
        payload: Any = EMPTY_PAYLOAD
        if body:
            payload = StreamReader(protocol, 2**16, loop=loop)  # type: ignore[arg-type]
            payload.feed_data(body)
            payload.feed_eof()
        writer = StreamWriter(protocol, loop)  # type: ignore[arg-type]
        task: Any = asyncio.current_task()
        request = web.Request(message, payload, protocol, writer, task, loop)  # type: ignore[arg-type]
        response = await app._handle(request)
        await response.prepare(request)
        await response.write_eof()

    return one


def request_parts(route: str, body: bytes, jwt: str) -> Tuple[str, str, Dict[str, str], bytes]:
    """``(method, path, headers, body)`` of run_all's two routes."""
    headers = {"Host": "127.0.0.1:8000", "Accept": "application/json", "User-Agent": "bench/1.0"}
    if route == "realistic":
        headers.update(
            {"Content-Type": "application/json", "Content-Length": str(len(body)), "Authorization": f"Bearer {jwt}"}
        )
        return "POST", "/orders", headers, body
    return "GET", "/hello?a=1", headers, b""
