"""Fault injection, so other packages can test retries, back-off and timeouts against a real server.

Modes (what the affected endpoints do):

- ``ok``: behave normally.
- ``error500``: answer ``500`` with a JSON error and store nothing.
- ``status429``: answer ``429`` with ``Retry-After: <retry_after>`` and store nothing.
- ``hang``: accept the connection and never answer, until the fault is reset or the server stops
  (then the connection is closed without a response). ``"hang": true`` means the same.

``delay`` (seconds) is added before answering, in every mode, including ``ok``. ``times`` limits the
fault to the next N affected requests, after which the mode returns to ``ok`` by itself (``null``:
until changed). ``scope`` is ``"ingest"`` (default: the ``POST /v1/...`` endpoints) or ``"all"``
(also ``GET /v1/config`` and ``GET /v1/rules``). The admin endpoints and the web page are never
affected.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace
from typing import Any

MODES = ("ok", "error500", "status429", "hang")
SCOPES = ("ingest", "all")


@dataclass(frozen=True)
class FaultSettings:
    """One fault configuration; see the module docstring for the meaning of each field."""

    mode: str = "ok"
    retry_after: int = 2
    delay: float = 0.0
    times: int | None = None
    scope: str = "ingest"

    def to_json(self) -> dict[str, Any]:
        """The JSON form served by ``GET /_admin/faults``."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> FaultSettings:
        """Validate the body of ``POST /_admin/faults``; raises ``ValueError`` with a readable reason."""
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object")
        unknown = set(data) - {"mode", "retry_after", "delay", "times", "scope", "hang"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        mode = data.get("mode", "ok")
        hang = data.get("hang", False)
        if not isinstance(hang, bool):
            raise ValueError("hang must be true or false")
        if hang:
            mode = "hang"
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        retry_after = data.get("retry_after", 2)
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
            raise ValueError("retry_after must be a non-negative integer (seconds)")
        delay = data.get("delay", 0.0)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 3600:
            raise ValueError("delay must be a number of seconds between 0 and 3600")
        times = data.get("times")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError("times must be a positive integer or null")
        scope = data.get("scope", "ingest")
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        return cls(mode=str(mode), retry_after=retry_after, delay=float(delay), times=times, scope=scope)


class FaultController:
    """The current fault, shared by all handler threads, plus the event that releases hung requests."""

    def __init__(self) -> None:
        """Start in ``ok`` mode."""
        self._lock = threading.Lock()
        self._settings = FaultSettings()
        self._release = threading.Event()

    @property
    def settings(self) -> FaultSettings:
        """The fault currently in force."""
        with self._lock:
            return self._settings

    def set(self, settings: FaultSettings) -> None:
        """Install a new fault; requests hung by the previous one are released (and get no answer)."""
        with self._lock:
            self._settings = settings
            old, self._release = self._release, threading.Event()
        old.set()

    def release_all(self) -> None:
        """Release every hung request now (used when the server stops)."""
        with self._lock:
            release = self._release
        release.set()

    def take(self, ingest: bool) -> tuple[FaultSettings, threading.Event]:
        """Return the fault that applies to one request, counting it against ``times``.

        The event returned is what a hung request waits on: it is set when the fault changes or the
        server stops.
        """
        with self._lock:
            current = self._settings
            if current.scope == "ingest" and not ingest:
                return FaultSettings(delay=0.0), self._release
            if current.mode != "ok" and current.times is not None:
                left = current.times - 1
                self._settings = replace(current, times=left) if left > 0 else FaultSettings()
            return current, self._release
