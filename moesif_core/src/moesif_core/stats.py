"""Counters a user (or a test) can read to see what the shipper did."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Dict


@dataclass
class Stats:
    #: captures accepted into the queue
    queued: int = 0
    #: events acknowledged by the collector
    sent: int = 0
    #: captures refused because the queue was full (events or bytes)
    dropped: int = 0
    #: events given up on: refused by the collector (4xx), unbuildable, or still unsent at the exit deadline
    failed: int = 0
    #: batch send attempts that failed and were retried
    retried: int = 0
    #: events not sent because sampling (the app config's rates) left them out
    sampled_out: int = 0
    #: batches acknowledged
    batches: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def snapshot(self) -> Dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
