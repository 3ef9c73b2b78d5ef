"""Fixtures shared by every test package.

``collector`` is the real local collector (``moesif_collector``), started in-process on 127.0.0.1 with a fresh
SQLite file, so end-to-end tests send over real loopback HTTP exactly as a user's app would.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "", None}


@pytest.fixture(scope="session", autouse=True)
def _loopback_only() -> Iterator[None]:
    """Tests talk to 127.0.0.1 only. A middleware built with the default ``BASE_URI`` starts fetching its config
    from the hosted API at once; here that name does not resolve (the SDK logs a failed fetch and goes on, as it
    would offline), so no test depends on, or sends anything to, the outside world."""
    original = socket.getaddrinfo

    def loopback_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in _LOCAL_HOSTS and not str(name).startswith("127."):
            raise socket.gaierror(socket.EAI_NONAME, f"tests resolve loopback names only, not {name!r}")
        return original(host, *args, **kwargs)

    socket.getaddrinfo = loopback_getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = original


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[object]:
    """A running local collector: ``.url`` for ``BASE_URI``, ``.wait_for_events(n, timeout)``, ``.events()``."""
    from moesif_collector import Collector

    c = Collector(
        db_path=str(tmp_path / "collector.db"),
        config_file=str(tmp_path / "config.json"),
        rules_file=str(tmp_path / "rules.json"),
    )
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def moesif_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Records of the ``moesif`` logger at DEBUG and up."""
    caplog.set_level(logging.DEBUG, logger="moesif")
    return caplog
