"""A queue bounded in events and in bytes, cheap to put into from the request path.

``put`` never blocks on anything but a short lock: when either bound is reached the new capture is dropped and
counted. Workers take batches with :meth:`EventQueue.take`, which waits until a batch is full, the batch timeout
passes, the queue is hurried by a flush, or it is closed; a batch is also cut at :data:`MAX_BATCH_BYTES`. What a
worker has taken stays counted as *in flight* until it calls :meth:`EventQueue.done`, so ``pending`` never misses
a batch between the queue and the network.

The queue holds each capture frozen (:meth:`RawCapture.freeze`): one plain tuple the cyclic GC stops tracking,
so a long queue adds nothing to the app's full collections. While the collector is away, a worker that backs off
compacts what waits (:meth:`EventQueue.compact`): a batch's worth of captures at a time becomes one
:class:`Packed`, the captures ``marshal``-ed together and compressed. Captures of one app repeat each other (the
same header names and values, URLs, bodies), so a trivial capture then holds ~45-80 bytes instead of ~750-1,100,
and an outage fills ``EVENT_QUEUE_MAX_BYTES`` (and starts dropping, or spooling) ten times later. The request path
never pays for it (~2 us a capture in the waiting worker, mostly outside the lock, and less to read it back).
"""

from __future__ import annotations

import marshal
import threading
import time
import zlib
from collections import deque
from typing import Deque, List, Optional, Union

from .capture import FROZEN_FIELDS, FROZEN_SIZE, Frozen, RawCapture

#: Longest a worker waits in one go (also caps absurd ``EVENT_BATCH_TIMEOUT`` values).
MAX_WAIT = 3600.0
#: A batch is cut when the captures in it hold this many bytes (the collector's request size stays sane).
MAX_BATCH_BYTES = 8 * 1024 * 1024
#: Captures packed together at most (fewer when ``BATCH_SIZE`` is smaller: a pack is never split across batches).
#: A hundred compress about as well as more (a trivial capture: 57 bytes in packs of 25, 42 in packs of 100).
COMPACT_CHUNK = 100
#: What a pack is counted for in the byte bound besides its compressed bytes (the objects and the queue slot).
COMPACT_OVERHEAD = 100
#: zlib's fastest level: higher ones save a few percent more for half again the time.
COMPACT_LEVEL = 1


class Packed:
    """Several captures, in order, ``marshal``-ed together and compressed (see :meth:`EventQueue.compact`)."""

    __slots__ = ("blob", "count")

    def __init__(self, blob: bytes, count: int) -> None:
        self.blob = blob
        self.count = count

    def unpack(self) -> List[Frozen]:
        captures: List[Frozen] = marshal.loads(zlib.decompress(self.blob))
        return captures


#: What the queue holds: a frozen capture, or a pack of them.
Queued = Union[Frozen, Packed]


_HEADER_FIELDS = (FROZEN_FIELDS.index("request_headers"), FROZEN_FIELDS.index("response_headers"))


def _plain_headers(frozen: Frozen) -> Frozen:
    """``frozen`` with header names and values of ``str`` subclasses as plain ``str`` (what the worker makes of
    them anyway), which ``marshal`` can hold."""
    fields = list(frozen)
    for i in _HEADER_FIELDS:
        fields[i] = tuple(str.__str__(x) if isinstance(x, str) and type(x) is not str else x for x in fields[i])
    return tuple(fields)


def _size(item: Queued) -> int:
    if type(item) is Packed:
        return len(item.blob) + COMPACT_OVERHEAD
    size: int = item[FROZEN_SIZE]  # type: ignore[index]
    return size


def _pack(chunk: List[Frozen]) -> Optional[Packed]:
    """The captures of ``chunk`` that ``marshal`` can hold, from the first on, as one :class:`Packed` (``None``
    when it cannot hold the first: metadata with a datetime, say). Header names of a ``str`` subclass (aiohttp's
    ``istr``) are packed as plain text, which is what the worker makes of them anyway."""
    try:
        data = marshal.dumps(chunk)
    except ValueError:
        plain = [_plain_headers(frozen) for frozen in chunk]
        try:
            data = marshal.dumps(plain)
        except ValueError:  # pack the captures before the first one marshal refuses
            n = 0
            for frozen in plain:
                try:
                    marshal.dumps(frozen)
                except ValueError:
                    break
                n += 1
            if n == 0:
                return None
            plain = plain[:n]
            data = marshal.dumps(plain)
        chunk = plain
    return Packed(zlib.compress(data, COMPACT_LEVEL), len(chunk))


class EventQueue:
    def __init__(self, max_events: int, max_bytes: int, batch_size: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        #: frozen captures, and at the front the packs :meth:`compact` made of them
        self._items: Deque[Queued] = deque()
        #: captures held (a pack holds several)
        self._count = 0
        #: how many entries at the front of ``_items`` :meth:`compact` has been through (packs, and captures it
        #: could not pack); every entry after them is one frozen capture
        self._compacted = 0
        #: changes whenever the front of ``_items`` does (a take, a pack put in, a clear): :meth:`compact` packs
        #: outside the lock and puts its pack in only if the captures it packed are still where they were
        self._front_changes = 0
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
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    def pending(self) -> int:
        """Queued plus in flight, read consistently."""
        with self._cond:
            return self._count + self.inflight

    def put(self, raw: RawCapture) -> bool:
        """Add ``raw`` (frozen); ``False`` (and nothing kept) when a bound is reached or the queue is closed."""
        frozen = raw.freeze()
        size = frozen[FROZEN_SIZE]
        with self._lock:
            count = self._count
            if self._closed or count >= self.max_events or self._bytes + size > self.max_bytes:
                self.refused += 1
                return False
            self._items.append(frozen)
            self._count = count = count + 1
            self._bytes += size
            self.accepted += 1
            if count % self.batch_size == 0:  # a batch is ready: wake one worker
                self._cond.notify()
        return True

    def take(self, timeout: float) -> List[Frozen]:
        """Up to ``batch_size`` frozen captures; waits at most ``timeout`` for a full batch (less if hurried or closed).
        The captures returned count as in flight until :meth:`done`."""
        deadline = time.monotonic() + min(timeout, MAX_WAIT)
        items = self._items
        with self._cond:
            while self._count < self.batch_size and not self._closed and not (self._hurry and items):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: List[Queued] = []
            n = batch_bytes = 0
            packs = False
            limit = self.batch_size
            while items and n < limit and (not batch or batch_bytes < MAX_BATCH_BYTES):
                item = items[0]
                if type(item) is Packed:
                    if batch and n + item.count > limit:  # a pack is never split: the batch ends before it
                        break
                    n += item.count
                    packs = True
                else:
                    n += 1
                items.popleft()
                size = _size(item)
                batch_bytes += size
                batch.append(item)
            if batch:
                self._bytes -= batch_bytes
                self._count -= n
                self.inflight += n
                self._compacted = max(0, self._compacted - len(batch))
                self._front_changes += 1
        if not packs:
            return batch  # type: ignore[return-value]  # every item is a frozen capture
        out: List[Frozen] = []
        for item in batch:
            if type(item) is Packed:
                out += item.unpack()
            else:
                out.append(item)  # type: ignore[arg-type]
        return out

    def compactable(self) -> bool:
        """Whether :meth:`compact` has a full pack's worth of captures to pack."""
        with self._lock:
            return len(self._items) - self._compacted >= self._chunk() and self._count > self.batch_size

    def _chunk(self) -> int:
        return min(COMPACT_CHUNK, self.batch_size)

    def compact(self, until: float) -> None:
        """Pack waiting captures, oldest first, a batch's worth at a time (:class:`Packed`), until all are or
        ``until`` (monotonic) has passed. For a worker backing off from a collector that is away: the queue then
        only grows, and packed it holds a tenth of the memory or less. Packing runs outside the lock (request threads go
        on putting); a pack is put in only if no take moved the front meanwhile. A capture ``marshal`` cannot hold
        (metadata with a datetime, say) stays as it is."""
        items = self._items
        chunk_size = self._chunk()
        while time.monotonic() < until:
            with self._lock:
                start = self._compacted
                if len(items) - start < chunk_size or self._count <= self.batch_size:  # nothing (left) worth it
                    return
                chunk: List[Frozen] = [items[i] for i in range(start, start + chunk_size)]  # type: ignore[misc]
                front = self._front_changes
            packed = _pack(chunk)  # marshal, then zlib (which lets other threads run)
            with self._lock:
                if self._front_changes != front:  # a take or another packer moved the front: start again
                    continue
                self._front_changes += 1
                if packed is None:
                    self._compacted = start + 1  # the first capture cannot be packed: it stays as it is
                    continue
                k = packed.count
                items.rotate(-start)
                for _ in range(k):
                    items.popleft()
                items.appendleft(packed)
                items.rotate(start)
                self._bytes -= sum(map(_size, chunk[:k])) - _size(packed)
                self._compacted = start + 1
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
            n = self._count
            self._items.clear()
            self._count = 0
            self._bytes = 0
            self._compacted = 0
            self._front_changes += 1
            return n

    def hurry(self, on: bool) -> None:
        """While hurried (a flush is waiting), ``take`` returns a partial batch at once instead of waiting."""
        with self._cond:
            self._hurry += 1 if on else -1
            self._cond.notify_all()
