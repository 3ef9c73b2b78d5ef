"""Fixtures for outgoing capture: a small third-party API on loopback, and capture started against the collector.

``api`` is the third party the app calls (``api.url("/json")``); the ``collector`` fixture (tests/conftest.py) is
the Moesif side. ``capture`` starts outgoing capture the original's way and stops it after the test; every test
checks that ``requests`` and ``httpx`` are left exactly as they were.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from outgoing_helpers import Capture, ThirdPartyAPI, assert_unpatched

import moesifpythonrequest


@pytest.fixture(scope="session")
def api() -> Iterator[ThirdPartyAPI]:
    server = ThirdPartyAPI()
    yield server
    server.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(autouse=True)
def _always_stopped() -> Iterator[None]:
    """Capture is process-wide: every test starts with it off and leaves it off, with nothing left patched."""
    moesifpythonrequest.stop(timeout=0)
    yield
    moesifpythonrequest.stop(timeout=0)
    assert_unpatched()


@pytest.fixture
def capture(collector: Any) -> Iterator[Capture]:
    c = Capture(collector)
    yield c
    moesifpythonrequest.stop(timeout=2)


@pytest.fixture
def started(capture: Capture) -> Capture:
    """Capture already on, default options."""
    capture.start()
    return capture
