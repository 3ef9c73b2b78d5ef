"""The opt-in durable spool (``SPOOL_DIR``): batches the collector could not take, kept on disk until it can.

When to write. Workers write, never the request path. A worker whose batch the collector did not take (no
connection, a timeout, 429, 5xx) keeps it in memory and backs off as it does without a spool, so a blip never
touches the disk; batches go to disk once the collector has taken nothing for :data:`SPILL_AFTER` seconds, once the
memory queue passes :data:`PRESSURE` of either of its bounds (whichever comes first), once this process has already
spilled during this outage, when a flush or the exit deadline is running (instead of giving the batch up), or at
shutdown. What is
written is what would have been sent: the batch already built, masked and serialised (gzipped, as it goes on the
wire), so no capture object is kept alive. While the collector is known to be down and this process is spilling,
new batches go to disk without another attempt; a success (a worker's or the drainer's) ends the outage.

When to send. One thread per process, the drainer, sends the oldest spooled batch it can lock, deletes it, and goes
on; on a failure it backs off on the workers' schedule (:mod:`moesif_core.retry`). It sends what an earlier process
left (a restart, a crash, ``kill -9``) and what other processes on the same directory wrote, from the first capture
on (as the workers: nothing starts in a pre-fork master).

Files: ``<ns since the epoch>-<pid>-<seq>-<events>-<bytes>.mspool``, so a listing sorts oldest first and knows
counts and sizes without opening anything. Each file is a header (magic, version, events, payload length, CRC-32 of
the payload) and the gzipped JSON body, written under a temporary name with mode 0600 and then renamed: no reader
sees a half-written file, and one damaged another way (a power cut before the kernel wrote it out: we do not
``fsync``, as the OpenTelemetry Collector's file storage does not by default) fails its checksum and is dropped and
counted, never sent half. A temporary file a dead writer left is removed after :data:`STALE_TMP` seconds.

Several processes: a batch is sent by whoever holds the exclusive ``flock`` on its file, and deleted before the lock
is released; a file already deleted when the lock is granted is left alone. The kernel releases the locks of a dead
process, so a batch whose sender was killed after the collector stored it and before it deleted the file is sent
again (the one way a spooled batch can arrive twice).

Files live in a subdirectory of ``SPOOL_DIR`` named after a hash of the application id and ``BASE_URI``
(:func:`spool_path`), so apps that share one ``SPOOL_DIR`` never send each other's events, and the id itself is never
written to disk.

Bounds and faults: over ``SPOOL_MAX_BYTES`` the oldest files are dropped and counted (by this process's view of the
directory, refreshed at least every :data:`LISTING_TTL` seconds, so several writers can overshoot by what they wrote
in that time). A directory that cannot be created or written (read-only, full, over a quota) turns the spool off
for :data:`RETRY_UNUSABLE` seconds with one log line; the process goes on memory-only, and nothing reaches the app.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import logging
import os
import re
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from .client import IngestionClient, SendResult, gzip_batch
from .jsoncodec import dumps, loads
from .queue import EventQueue
from .retry import INITIAL_BACKOFF, MAX_SERVER_ERROR_ATTEMPTS, next_wait

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no spool
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("moesif")

SUFFIX = ".mspool"
TMP_PREFIX = ".tmp-"
_NAME = re.compile(r"^(\d{20})-(\d+)-(\d+)-(\d+)-(\d+)\.mspool$")
MAGIC = b"MSPL"
VERSION = 1
#: magic, version, 3 bytes reserved, events (u32), payload length (u64), CRC-32 of the payload (u32)
HEADER = struct.Struct("<4sB3xIQI")

#: Fraction of either bound of the memory queue past which failed batches go to disk.
PRESSURE = 0.5
#: Seconds of outage (no batch taken since the first failure) after which failed batches go to disk: what a
#: ``kill -9`` can lose is then at most this much traffic (or ``PRESSURE`` of the queue), not a full queue.
SPILL_AFTER = 5.0
#: How often a worker that holds a failed batch looks at the queue while it backs off.
PRESSURE_CHECK = 0.05
#: A directory listing older than this is read again before it is trusted (other processes write too).
LISTING_TTL = 1.0
#: With nothing to send, the drainer looks at the directory this often (for what other processes left).
IDLE_SCAN = 5.0
#: A temporary file this old (seconds) was left by a writer that died; it is removed.
STALE_TMP = 60.0
#: After a failure to write, the spool stays off this long (seconds) before it is tried again.
RETRY_UNUSABLE = 60.0
#: Spool drops are logged at most this often (seconds).
DROP_LOG_INTERVAL = 60.0


#: Numbers the files this process writes (one counter for every agent in it: their names must never meet).
_SEQ = itertools.count()


class CorruptFile(Exception):
    """A spool file that is not whole: cut short, or not what its header says."""


@dataclass(frozen=True)
class Entry:
    """One spooled batch, as its file name tells it."""

    name: str
    events: int
    size: int

    @classmethod
    def parse(cls, name: str) -> Optional[Entry]:
        m = _NAME.match(name)
        return cls(name, int(m.group(4)), int(m.group(5))) if m else None


def spool_path(spool_dir: str, application_id: str, base_uri: str) -> str:
    """The directory one application's batches for one ingestion API go to, inside ``SPOOL_DIR``."""
    key = hashlib.sha256(f"{application_id}\n{base_uri}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return os.path.join(spool_dir, key)


def encode(payload: bytes, events: int) -> bytes:
    """A spool file's content: the header, then ``payload``."""
    return HEADER.pack(MAGIC, VERSION, events, len(payload), zlib.crc32(payload)) + payload


def decode(data: bytes) -> bytes:
    """The payload of a spool file's content; raises :class:`CorruptFile` unless it is whole."""
    if len(data) < HEADER.size:
        raise CorruptFile(f"{len(data)} bytes, shorter than the header")
    magic, version, _events, length, crc = HEADER.unpack_from(data)
    payload = data[HEADER.size :]
    if magic != MAGIC or version != VERSION:
        raise CorruptFile("not a spool file of this version")
    if length != len(payload) or zlib.crc32(payload) != crc:
        raise CorruptFile(f"payload of {len(payload)} bytes, the header says {length} (or the checksum differs)")
    return payload


class Claim:
    """A spool file locked by us: read it, then delete or release it."""

    def __init__(self, directory: str, entry: Entry, fd: int) -> None:
        self.path = os.path.join(directory, entry.name)
        self.entry = entry
        self.fd = fd

    def read(self) -> bytes:
        chunks: List[bytes] = []
        while True:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return decode(b"".join(chunks))
            chunks.append(chunk)

    def delete(self) -> None:
        """Unlink while still locked (so nobody can lock it and find it linked), then release."""
        try:
            os.unlink(self.path)
        finally:
            self.release()

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # drops the flock with the last descriptor
            self.fd = -1


class SpoolFiles:
    """The directory: write, list, lock. No policy."""

    def __init__(self, path: str) -> None:
        self.path = path

    def ensure(self) -> None:
        os.makedirs(self.path, mode=0o700, exist_ok=True)

    def write(self, payload: bytes, events: int, ts_ns: Optional[int] = None) -> Entry:
        """Write one batch atomically (temporary file, then rename); raises ``OSError`` (nothing left behind)."""
        data = encode(payload, events)
        pid, seq = os.getpid(), next(_SEQ)
        ts = time.time_ns() if ts_ns is None else ts_ns
        name = f"{ts:020d}-{pid}-{seq}-{events}-{len(data)}{SUFFIX}"
        tmp = os.path.join(self.path, f"{TMP_PREFIX}{pid}-{seq}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(tmp, os.path.join(self.path, name))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return Entry(name, events, len(data))

    def list(self) -> List[Entry]:
        """Every whole batch file, oldest first; removes temporary files dead writers left."""
        entries = []
        now = time.time()
        for name in os.listdir(self.path):
            entry = Entry.parse(name)
            if entry is not None:
                entries.append(entry)
            elif name.startswith(TMP_PREFIX):
                path = os.path.join(self.path, name)
                try:
                    if now - os.stat(path).st_mtime > STALE_TMP:
                        os.unlink(path)
                except OSError:
                    pass
        entries.sort(key=lambda e: e.name)
        return entries

    def claim(self, entry: Entry) -> Optional[Claim]:
        """Lock ``entry`` for us alone; ``None`` when another process holds it or it is gone."""
        assert fcntl is not None
        try:
            fd = os.open(os.path.join(self.path, entry.name), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_nlink == 0:  # sent and deleted between our open and our lock
                os.close(fd)
                return None
        except OSError:  # held by another (BlockingIOError), or a filesystem without flock
            os.close(fd)
            return None
        return Claim(self.path, entry, fd)


def under_pressure(queue: EventQueue) -> bool:
    """The memory queue is past :data:`PRESSURE` of its event or byte bound."""
    return len(queue) >= queue.max_events * PRESSURE or queue.bytes >= queue.max_bytes * PRESSURE


class Spool:
    """One process's use of the spool directory: the workers' :meth:`take`, and the drainer thread."""

    def __init__(
        self,
        path: str,
        max_bytes: int,
        client: IngestionClient,
        queue: EventQueue,
        *,
        add_stats: Callable[..., None],
        on_result: Callable[[SendResult], None],
        flushing: Callable[[], bool],
        closing: Callable[[], bool],
    ) -> None:
        self.files = SpoolFiles(path)
        self.max_bytes = max_bytes
        self.client = client
        self.queue = queue
        self._add_stats = add_stats
        self._on_result = on_result
        self._flushing = flushing
        self._closing = closing
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._listing: List[Entry] = []
        self._listed_at = float("-inf")
        #: the collector is known not to take batches: an attempt failed and none succeeded since
        self.down = False
        self._down_since = 0.0
        #: this process wrote to the spool since the collector last took a batch
        self.spilling = False
        self._off_until = 0.0
        self._off = fcntl is None
        self._broken = False
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._kicked = False
        self._held: Optional[Claim] = None
        #: the file our drainer is sending that ``_make_room`` wants gone: deleted if that attempt fails
        self._doomed: Optional[str] = None
        self._last_drop_log = float("-inf")
        self._drops_since_log = 0
        #: events written by this process, events dropped from the spool by it, bytes in the directory
        self.spooled = 0
        self.dropped = 0
        self.bytes = 0
        if fcntl is None:
            logger.warning("moesif: SPOOL_DIR needs flock (a POSIX system); keeping events in memory only")

    # -- the workers ---------------------------------------------------------------------------------------------

    def usable(self) -> bool:
        return not self._broken and (not self._off or time.monotonic() >= self._off_until) and fcntl is not None

    def wants(self) -> bool:
        """Should a batch the collector did not take go to disk now?"""
        if not self.usable():
            return False
        if self._closing():
            return True
        return self.down and (
            self.spilling
            or self._flushing()
            or time.monotonic() - self._down_since >= SPILL_AFTER
            or under_pressure(self.queue)
        )

    def take(self, body: bytes, events: int) -> bool:
        """Write the serialised batch ``body`` to the spool if :meth:`wants` says so. ``True``: the spool has it
        (or dropped it, counted, being larger than ``SPOOL_MAX_BYTES``); ``False``: the caller keeps it."""
        if not self.wants():
            return False
        payload = gzip_batch(body)
        size = HEADER.size + len(payload)
        if size > self.max_bytes:
            self._note_drops(events, "a batch larger than SPOOL_MAX_BYTES")
            return True
        with self._write_lock:
            try:
                self.files.ensure()
                self._make_room(size)
                entry = self.files.write(payload, events)
            except OSError as exc:
                self._turn_off(exc)
                return False
        with self._cond:
            self._listing.append(entry)
            self.bytes += entry.size
            self.spooled += events
            self.spilling = True
            back = self._off
            self._off = False
            self._cond.notify_all()
        if back:
            logger.info("moesif: the spool directory %s is writable again", self.files.path)
        return True

    def note_down(self) -> None:
        if not self.down:
            self._down_since = time.monotonic()
            self.down = True

    def note_up(self) -> None:
        """The collector took a batch: the outage is over; the drainer sends the backlog now."""
        if self.down or self.spilling:
            with self._cond:
                self.down = self.spilling = False
                self._cond.notify_all()

    def sleep(self, seconds: float, sleep: Callable[[float], bool]) -> None:
        """Back off like ``sleep`` (which returns ``True`` when woken early), but return as soon as the batch
        should go to disk instead."""
        end = time.monotonic() + seconds
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0 or sleep(min(remaining, PRESSURE_CHECK)) or self.wants():
                return

    def _turn_off(self, exc: OSError) -> None:
        with self._lock:
            first = not self._off
            self._off = True
            self._off_until = time.monotonic() + RETRY_UNUSABLE
        if first:
            logger.warning(
                "moesif: cannot write to the spool directory %s (%s); keeping events in memory only",
                self.files.path,
                exc,
            )

    def _fresh_listing(self) -> List[Entry]:
        if time.monotonic() - self._listed_at > LISTING_TTL:
            entries = self.files.list()
            with self._lock:
                self._listing = entries
                self._listed_at = time.monotonic()
                self.bytes = sum(e.size for e in entries)
        with self._lock:
            return list(self._listing)

    def _make_room(self, size: int) -> None:
        """Drop the oldest files until ``size`` more bytes fit under ``SPOOL_MAX_BYTES``."""
        listing = self._fresh_listing()
        excess = sum(e.size for e in listing) + size - self.max_bytes
        for entry in listing:
            if excess <= 0:
                return
            claim = self.files.claim(entry)
            if claim is None:
                held = self._held
                if held is not None and held.entry == entry:
                    # our own drainer is trying to send it: if that attempt fails it deletes the file, so the oldest
                    # batch is still the one dropped (skipping it would drop a newer one in its place)
                    self._doomed = entry.name
                    excess -= entry.size
                continue  # held by another process: being sent, about to go anyway
            claim.delete()
            self._forget(entry)
            excess -= entry.size
            self._note_drops(entry.events, "the spool is over SPOOL_MAX_BYTES")

    def _forget(self, entry: Entry) -> None:
        with self._lock:
            try:
                self._listing.remove(entry)
                self.bytes -= entry.size
            except ValueError:
                pass

    def _note_drops(self, events: int, reason: str) -> None:
        with self._lock:
            self.dropped += events
            self._drops_since_log += events
            now = time.monotonic()
            if now - self._last_drop_log < DROP_LOG_INTERVAL:
                return
            n, self._drops_since_log, self._last_drop_log = self._drops_since_log, 0, now
        logger.warning("moesif: %s; dropped %d spooled event(s) since the last message", reason, n)

    # -- the drainer ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        if fcntl is None or self._stopping or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(target=self._run, name="moesif-spool", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def kick(self) -> None:
        """Try the collector now rather than at the end of the drainer's backoff (a flush asks for it)."""
        with self._cond:
            self._kicked = True
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        """Close the file a thread of the parent held locked (our copy of it would keep the lock)."""
        held, self._held = self._held, None
        if held is not None:
            try:
                held.release()
            except OSError:
                pass

    def _wait(self, seconds: float) -> None:
        with self._cond:
            if not self._stopping:
                self._cond.wait(seconds)

    def _run(self) -> None:
        backoff, retry_at = INITIAL_BACKOFF, 0.0
        server_errors: Dict[str, int] = {}
        while not self._stopping:
            try:
                if self._broken:
                    return
                if self._kicked:
                    self._kicked, retry_at = False, 0.0
                if self.down and time.monotonic() < retry_at:
                    self._wait(retry_at - time.monotonic())
                    continue
                claim = self._claim_oldest()
                if claim is None:
                    self._wait(IDLE_SCAN if not self._listing else LISTING_TTL)
                    continue
                self._held = claim
                try:
                    result = self._send(claim, server_errors)
                    if result is not None and self._doomed == claim.entry.name:
                        # not sent, and over SPOOL_MAX_BYTES while we tried (see _make_room): counted, then gone
                        self._note_drops(claim.entry.events, "the spool is over SPOOL_MAX_BYTES")
                        self._finish(claim)
                finally:
                    claim.release()
                    self._held = self._doomed = None
                if result is None:  # the collector took it, or it is gone for good
                    backoff = INITIAL_BACKOFF
                    continue
                self.note_down()
                wait, backoff = next_wait(backoff, result.retry_after)
                retry_at = time.monotonic() + wait
                logger.debug("moesif: spooled batch not sent (%s); retrying in %.2fs", result.error, wait)
            except Exception:
                logger.warning("moesif: spool error", exc_info=True)
                self._wait(IDLE_SCAN)

    def _claim_oldest(self) -> Optional[Claim]:
        try:
            self.files.ensure()
            listing = self._fresh_listing()
        except OSError as exc:
            logger.debug("moesif: cannot list the spool directory %s: %s", self.files.path, exc)
            return None
        for entry in listing:
            claim = self.files.claim(entry)
            if claim is not None:
                return claim
            if not os.path.exists(os.path.join(self.files.path, entry.name)):
                self._forget(entry)
        if listing:
            self._listed_at = float("-inf")  # all held by others: look again on the next round
        return None

    def _send(self, claim: Claim, server_errors: Dict[str, int]) -> Optional[SendResult]:
        """Send one claimed file. ``None`` when it is done with (sent, split, refused, corrupt); the result when it
        should be tried again later."""
        entry = claim.entry
        try:
            payload = claim.read()
        except (CorruptFile, OSError) as exc:
            # counted before the file goes (here and below): whoever sees it gone sees it counted
            self._note_drops(entry.events, f"a spool file could not be read ({entry.name}: {exc})")
            self._finish(claim)
            return None
        result = self.client.send_events(payload, gzipped=True)
        self._on_result(result)
        if result.ok:
            self._add_stats(sent=entry.events, batches=1)
            self._finish(claim)
            self.note_up()
            return None
        if result.status == 413 and entry.events > 1:
            self._split(claim, payload)
            self.note_up()
            return None
        if not result.retryable:
            logger.warning(
                "moesif: the collector refused a spooled batch of %d event(s) (%s); dropped", entry.events, result.error
            )
            self._add_stats(failed=entry.events)
            self._finish(claim)
            return None
        if result.status is not None and result.status >= 500 and result.status != 503:
            server_errors[entry.name] = tries = server_errors.get(entry.name, 0) + 1
            if tries >= MAX_SERVER_ERROR_ATTEMPTS:
                del server_errors[entry.name]
                logger.warning(
                    "moesif: gave up on a spooled batch of %d event(s) after %d server errors (%s)",
                    entry.events,
                    tries,
                    result.error,
                )
                self._add_stats(failed=entry.events)
                self._finish(claim)
                return None
        self._add_stats(retried=1)
        return result

    def _finish(self, claim: Claim) -> None:
        """Delete a file we are done with (forgotten first: once it is gone, ``spool_bytes`` no longer counts it). If
        that fails we would send it again and again: stop draining."""
        self._forget(claim.entry)
        try:
            claim.delete()
        except OSError as exc:
            self._broken = True
            logger.warning(
                "moesif: cannot delete %s from the spool directory (%s); no longer sending from the spool",
                claim.entry.name,
                exc,
            )

    def _split(self, claim: Claim, payload: bytes) -> None:
        """Too large for the collector (413): two files, each half the batch, in the same place in the order."""
        events: List[Any] = loads(gzip.decompress(payload))
        ts = int(claim.entry.name.split("-", 1)[0])
        half = len(events) // 2
        with self._write_lock:
            written: List[Entry] = []
            try:
                for part in (events[:half], events[half:]):
                    body = gzip_batch(dumps(part))
                    written.append(self.files.write(body, len(part), ts_ns=ts))
            except OSError:
                # the whole batch stays in its file: a half written here as well would be sent twice
                for entry in written:
                    try:
                        os.unlink(os.path.join(self.files.path, entry.name))
                    except OSError:
                        pass
                raise
            with self._lock:
                for entry in written:
                    self._listing.append(entry)
                    self.bytes += entry.size
            self._finish(claim)
        with self._lock:
            self._listing.sort(key=lambda e: e.name)

    def snapshot(self) -> Dict[str, int]:
        return {"spooled": self.spooled, "spool_bytes": self.bytes, "spool_dropped": self.dropped}
