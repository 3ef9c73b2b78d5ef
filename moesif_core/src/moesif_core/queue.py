"""A queue bounded in events and in bytes, cheap to put into from the request path.

``put`` never blocks on anything but a short lock: when either bound is reached the new capture is dropped and
counted. Workers take batches with :meth:`EventQueue.take`, which waits until a batch is full, the batch timeout
passes, the queue is hurried by a flush, or it is closed; a batch is also cut at :data:`MAX_BATCH_BYTES`. What a
worker has taken stays counted as *in flight* until it calls :meth:`EventQueue.done`, so ``pending`` never misses
a batch between the queue and the network.

The queue holds each capture frozen (:meth:`RawCapture.freeze`): one plain tuple the cyclic GC stops tracking,
so a long queue adds nothing to the app's full collections.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Deque, List

from .capture import FROZEN_SIZE, Frozen, RawCapture

#: Longest a worker waits in one go (also caps absurd ``EVENT_BATCH_TIMEOUT`` values).
MAX_WAIT = 3600.0
#: A batch is cut when the captures in it hold this many bytes (the collector's request size stays sane).
MAX_BATCH_BYTES = 8 * 1024 * 1024


class EventQueue:
    def __init__(self, max_events: int, max_bytes: int, batch_size: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self._items: Deque[Frozen] = deque()
        self._bytes = 0
        #: the lock, held directly on the request path (a C-level ``with``, where the Condition's is a Python call)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._closed = False
        self._hurry = 0
        #: captures taken by workers and not yet reported done
        self.inflight = 0
        #: captures accepted and refused since start (read by :class:`~moesif_core.agent.Agent` for its stats)
        self.accepted = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def pending(self) -> int:
        """Queued plus in flight, read consistently."""
        with self._cond:
            return len(self._items) + self.inflight

    def put(self, raw: RawCapture) -> bool:
        """Add ``raw`` (frozen); ``False`` (and nothing kept) when a bound is reached or the queue is closed."""
        frozen = raw.freeze()
        size = frozen[FROZEN_SIZE]
        items = self._items
        with self._lock:
            if self._closed or len(items) >= self.max_events or self._bytes + size > self.max_bytes:
                self.refused += 1
                return False
            items.append(frozen)
            self._bytes += size
            self.accepted += 1
            if len(items) % self.batch_size == 0:  # a batch is ready: wake one worker
                self._cond.notify()
        return True

    def take(self, timeout: float) -> List[Frozen]:
        """Up to ``batch_size`` frozen captures; waits at most ``timeout`` for a full batch (less if hurried or closed).
        The captures returned count as in flight until :meth:`done`."""
        deadline = time.monotonic() + min(timeout, MAX_WAIT)
        with self._cond:
            while len(self._items) < self.batch_size and not self._closed and not (self._hurry and self._items):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: List[Frozen] = []
            batch_bytes = 0
            while self._items and len(batch) < self.batch_size and (not batch or batch_bytes < MAX_BATCH_BYTES):
                frozen = self._items.popleft()
                size = frozen[FROZEN_SIZE]
                self._bytes -= size
                batch_bytes += size
                batch.append(frozen)
            self.inflight += len(batch)
            return batch

    def done(self, n: int) -> None:
        with self._cond:
            self.inflight -= n

    def wake(self, close: bool = False) -> None:
        """Wake waiting workers now; ``close`` refuses later puts and makes ``take`` return at once."""
        with self._cond:
            if close:
                self._closed = True
            self._cond.notify_all()

    def clear(self) -> int:
        """Drop everything queued; returns how many captures were dropped."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self._bytes = 0
            return n

    def hurry(self, on: bool) -> None:
        """While hurried (a flush is waiting), ``take`` returns a partial batch at once instead of waiting."""
        with self._cond:
            self._hurry += 1 if on else -1
            self._cond.notify_all()
