"""Fixtures shared by every test package.

``collector`` is the real local collector (``moesif_collector``), started in-process on 127.0.0.1 with a fresh
SQLite file, so end-to-end tests send over real loopback HTTP exactly as a user's app would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest


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
