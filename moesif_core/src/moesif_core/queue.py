"""A queue bounded in events and in bytes, cheap to put into from the request path.

``put`` never blocks on anything but a short lock: when either bound is reached the new capture is dropped and
counted. Workers take batches with :meth:`EventQueue.take`, which waits until a batch is full, the batch timeout
passes, the queue is hurried by a flush, or it is closed; a batch is also cut at :data:`MAX_BATCH_BYTES`. What a
worker has taken stays counted as *in flight* until it calls :meth:`EventQueue.done`, so ``pending`` never misses
a batch between the queue and the network.

The queue holds each capture frozen (:meth:`RawCapture.freeze`): one plain tuple the cyclic GC stops tracking,
so a long queue adds nothing to the app's full collections. While the collector is away, a worker that backs off
compacts what waits (:meth:`EventQueue.compact`): each capture becomes ``marshal`` bytes, half the memory of the
tuple and its strings (a trivial Flask capture ~380 bytes instead of ~770), so twice as many fit in
``EVENT_QUEUE_MAX_BYTES``. The request path never pays for it (~1.5 us a capture, and as much to read it back).
"""

from __future__ import annotations

import marshal
import threading
import time
from collections import deque
from typing import Deque, List, Union

from .capture import FROZEN_FIELDS, FROZEN_SIZE, Frozen, RawCapture

#: Longest a worker waits in one go (also caps absurd ``EVENT_BATCH_TIMEOUT`` values).
MAX_WAIT = 3600.0
#: A batch is cut when the captures in it hold this many bytes (the collector's request size stays sane).
MAX_BATCH_BYTES = 8 * 1024 * 1024
#: Captures compacted in one go, under the lock (~0.5 ms), before request threads get their turn.
COMPACT_CHUNK = 256
#: What a compacted capture is counted for in the byte bound besides its bytes (the object and its queue slot).
COMPACT_OVERHEAD = 48

#: What the queue holds: a frozen capture, or one compacted to ``marshal`` bytes.
Queued = Union[Frozen, bytes]


_HEADER_FIELDS = (FROZEN_FIELDS.index("request_headers"), FROZEN_FIELDS.index("response_headers"))


def _plain_headers(frozen: Frozen) -> Frozen:
    """``frozen`` with header names and values of ``str`` subclasses as plain ``str`` (what the worker makes of
    them anyway), which ``marshal`` can hold."""
    fields = list(frozen)
    for i in _HEADER_FIELDS:
        fields[i] = tuple(str.__str__(x) if isinstance(x, str) and type(x) is not str else x for x in fields[i])
    return tuple(fields)


def _size(item: Queued) -> int:
    if type(item) is bytes:
        return len(item) + COMPACT_OVERHEAD
    size: int = item[FROZEN_SIZE]
    return size


class EventQueue:
    def __init__(self, max_events: int, max_bytes: int, batch_size: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self._items: Deque[Queued] = deque()
        #: how many captures at the front of the queue :meth:`compact` has been through
        self._compacted = 0
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
            batch: List[Queued] = []
            batch_bytes = 0
            while self._items and len(batch) < self.batch_size and (not batch or batch_bytes < MAX_BATCH_BYTES):
                item = self._items.popleft()
                size = _size(item)
                self._bytes -= size
                batch_bytes += size
                batch.append(item)
            self.inflight += len(batch)
            self._compacted = max(0, self._compacted - len(batch))
        return [marshal.loads(item) if isinstance(item, bytes) else item for item in batch]

    def compact(self, until: float) -> None:
        """Turn waiting captures into ``marshal`` bytes, oldest first, until all are or ``until`` (monotonic) has
        passed. For a worker backing off from a collector that is away: the queue then only grows, and holds half
        the memory. A capture ``marshal`` cannot hold (metadata with a datetime, say) stays as it is."""
        items = self._items
        while time.monotonic() < until:
            with self._lock:
                start = self._compacted
                end = min(len(items), start + COMPACT_CHUNK)
                if start >= end or len(items) <= self.batch_size:  # nothing (left) worth the work
                    return
                saved = 0
                for i in range(start, end):
                    item = items[i]
                    if isinstance(item, bytes):
                        continue
                    try:
                        blob = marshal.dumps(item)
                    except ValueError:  # a str subclass (aiohttp's istr header names), or metadata marshal refuses
                        try:
                            blob = marshal.dumps(_plain_headers(item))
                        except ValueError:
                            continue
                    items[i] = blob
                    saved += _size(item) - _size(blob)
                self._bytes -= saved
                self._compacted = end
            time.sleep(0)  # the request threads' turn (they put into this queue)

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
            self._compacted = 0
            return n

    def hurry(self, on: bool) -> None:
        """While hurried (a flush is waiting), ``take`` returns a partial batch at once instead of waiting."""
        with self._cond:
            self._hurry += 1 if on else -1
            self._cond.notify_all()
