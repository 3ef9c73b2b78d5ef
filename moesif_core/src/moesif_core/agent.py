"""The shipper: a bounded queue, background workers that build and send batches, flush at exit, fork safety.

The request path calls :meth:`Agent.capture` and nothing else: it puts the raw capture into the queue (or drops
and counts it when the queue is full) and returns. Workers take batches, build events (JSON, base64, masking,
``MASK_EVENT_MODEL``), gzip and POST them, and retry failures with exponential backoff and jitter, honouring
``Retry-After``. A worker holding a failed batch takes no new one, so while the collector is away the queue's
bounds are what bound memory, and what fits in them arrives once it is back.

Workers start on the first capture, so a middleware built in a pre-fork master (gunicorn ``--preload``) starts
no worker there; a forked child gets an empty queue of its own and starts its own workers; a worker that died is
restarted on the next capture. The config refresher (:mod:`moesif_core.remote`) starts when the agent is built, so
the config is normally known before the first request (a pre-fork master's is inherited by its children); captures
made while it is still unknown are decided by the worker once it arrives (it waits at most
:data:`~moesif_core.remote.FIRST_CONFIG_WAIT` seconds for it). At interpreter exit the queue is flushed within
``EXIT_FLUSH_TIMEOUT`` and exit never waits longer (the workers are daemon threads).

With ``SPOOL_DIR`` set, batches the collector cannot take go to disk once memory fills (or at a deadline) and are
sent from there later, by this process or another: :mod:`moesif_core.spool`; ``_ship`` is its only hook.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional
from urllib.parse import urlsplit

from .build import EventBuilder
from .capture import FROZEN_WEIGHT, Frozen, RawCapture
from .client import IngestionClient, SendResult, set_default_base_uri
from .governance import Governor
from .jsoncodec import dumps
from .queue import EventQueue
from .remote import RemoteConfig
from .retry import INITIAL_BACKOFF, MAX_SERVER_ERROR_ATTEMPTS, next_wait
from .sampling import draw, needs_late_fields, sampling_fields, sampling_rate
from .settings import Settings
from .spool import Spool, spool_path
from .stats import Stats

logger = logging.getLogger("moesif")

#: A worker backing off compacts the captures queued meanwhile this often (seconds).
COMPACT_EVERY = 1.0
#: Drops are logged at most this often (seconds).
DROP_LOG_INTERVAL = 60.0
#: A worker building events hands the GIL over at least this often (seconds). Each hand-over costs both threads a
#: sleep and a wake-up: every 0.2 ms the worker spent 15-25 % more CPU per event building JSON-bodied events with
#: a busy app thread beside it, for the same median event-loop lateness as every 1 ms (0.2 ms); every 2 ms the
#: median lateness grows (0.8-1.4 ms).
GIL_HAND_OVER = 0.001

#: Our own generator for sampling draws: the app's use of the ``random`` module (seeded tests, say) neither
#: affects nor is affected by ours.
_rng = random.Random()
if hasattr(os, "register_at_fork"):  # children of one pre-fork master must not share draws
    os.register_at_fork(after_in_child=_rng.seed)


def configure_debug_logging(debug: bool) -> None:
    """``DEBUG``/``LOCAL_DEBUG``: show the ``moesif`` logger's debug output even if the app set up no logging."""
    if not debug:
        return
    logger.setLevel(logging.DEBUG)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


class Agent:
    """Owns the queue, the workers and the client for one settings object."""

    def __init__(
        self,
        settings: Settings,
        *,
        user_agent: str,
        client: Optional[IngestionClient] = None,
    ) -> None:
        self.settings = settings
        self.builder = EventBuilder(settings)
        self.client = client or IngestionClient(
            settings.application_id, settings.base_uri, user_agent=user_agent, timeout=settings.request_timeout
        )
        set_default_base_uri(settings.base_uri)
        self.stats = Stats()
        #: The app config and governance rules from ``{BASE_URI}/v1/config`` and ``/v1/rules``, fetched in the
        #: background from now on (never blocking, never raising) and kept fresh.
        self.remote = RemoteConfig(self.client)
        #: Governance for adapters: ``agent.governor.evaluate(RequestFacts(...))`` before calling the app.
        self.governor = Governor(self.remote.current)
        #: Called (in a worker) with the config ETag a batch response carried.
        self.on_config_etag: Optional[Callable[[str], None]] = self.remote.notice_etag
        configure_debug_logging(settings.debug)
        self._init_process_state()
        _AGENTS.add(self)
        ref = weakref.ref(self)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: _after_fork(ref))
        self.remote.ensure_started()
        weakref.finalize(self, self.remote.stop)  # an agent nobody holds any more stops fetching

    def wait_for_config(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the first config and rules; ``True`` once they are known.

        Never needed for sampling (captures made before the config is known are decided when it arrives); an app
        that wants governance rules in force from its very first request calls it once at start-up."""
        return self.remote.wait_known(timeout)

    def _init_process_state(self) -> None:
        s = self.settings
        self._pid = os.getpid()
        self._queue = EventQueue(s.event_queue_size, s.event_queue_max_bytes, s.batch_size)
        self._threads: List[threading.Thread] = []
        self._running = False
        self._start_lock = threading.Lock()
        self._signal = threading.Condition(threading.Lock())
        #: how many times :attr:`_signal` was notified (a backing-off worker that was compacting then sees it)
        self._wakes = 0
        self._deadline: Optional[float] = None
        self._shutdown = False
        self._drop_lock = threading.Lock()
        self._last_drop_log = 0.0
        self._drops_since_log = 0
        #: calls whose response was collected unfinished, to finish off the collector's path (see :meth:`defer`)
        self._deferred: Deque[Callable[[], None]] = deque()
        old_spool: Optional[Spool] = getattr(self, "_spool", None)
        if old_spool is not None:
            old_spool.after_fork_in_child()
        #: the durable spool (``SPOOL_DIR``), written by the workers only
        self._spool = (
            Spool(
                spool_path(s.spool_dir, s.application_id, s.base_uri),
                s.spool_max_bytes,
                self.client,
                self._queue,
                add_stats=lambda **counts: self.stats.add(**counts),
                on_result=self._notice_config_etag,
                flushing=lambda: self._deadline is not None,
                closing=lambda: self._shutdown,
            )
            if s.spool_dir
            else None
        )

    # -- request path ------------------------------------------------------------------------------------------

    def capture(self, raw: RawCapture) -> bool:
        """Queue ``raw`` for the workers; ``False`` if it was dropped. Never blocks on the network; never raises."""
        try:
            if not self._running:
                self.start()
            if self._queue.put(raw):
                return True
            self._note_drop()
        except Exception:
            logger.warning("moesif: could not queue an event", exc_info=True)
        return False

    def defer(self, finish: Callable[[], None]) -> None:
        """Have ``finish`` run soon in a worker thread (or by the next :meth:`flush`, or at exit).

        For a response wrapper collected before its call was finished (a server or test client that dropped it
        without ``close()``): its ``__del__`` hands the call over here. Safe in ``__del__`` and GC callbacks, which
        may run in any thread at any point, even while that thread holds the queue's lock: this only appends to a
        deque (atomic, no lock, no I/O, no thread start), and ``finish`` (the callbacks, the capture) runs later,
        outside the collector."""
        self._deferred.append(finish)

    def _run_deferred(self) -> None:
        deferred = self._deferred
        while deferred:
            try:
                finish = deferred.popleft()
            except IndexError:  # another thread took the last one
                return
            try:
                finish()
            except Exception:
                logger.warning("moesif: could not record an abandoned response", exc_info=True)

    def sample_early(self, verb: str, path: str, ip: Optional[str] = None) -> Optional[int]:
        """Sampling decided before the app runs, where the config allows it.

        ``None``: *not sampled*, skip all capture work for this request. A positive int: kept, with that weight
        (put it in ``RawCapture.weight``). ``0``: the decision needs the user, company or status; capture as usual
        and the worker decides (``RawCapture.weight`` 0 or ``None`` both mean *undecided*).
        """
        config, _ = self.remote.current()
        if config.samples_everything:
            return 1
        if not config.known or needs_late_fields(config):  # not known yet: the worker decides once it is
            return 0
        keep, weight = draw(sampling_rate(config, sampling_fields(verb, path, ip, None)), _rng)
        return weight if keep else None

    def start(self) -> None:
        """Start the workers and the config refresher (done by the first capture; idempotent, cheap)."""
        with self._start_lock:
            if self._shutdown or self._running:
                return
            alive = [t for t in self._threads if t.is_alive()]
            if len(alive) < len(self._threads):
                logger.warning("moesif: a worker thread had stopped; restarting it")
            while len(alive) < self.settings.event_worker_count:
                t = threading.Thread(target=self._run, name=f"moesif-worker-{len(alive)}", daemon=True)
                t.start()
                alive.append(t)
            self._threads = alive
            self._running = True
            if self._spool is not None:
                self._spool.start()
        self.remote.ensure_started()

    def _note_drop(self) -> None:
        with self._drop_lock:
            self._drops_since_log += 1
            now = time.monotonic()
            if now - self._last_drop_log < DROP_LOG_INTERVAL:
                return
            dropped, self._drops_since_log, self._last_drop_log = self._drops_since_log, 0, now
        reason = (
            "shut down"
            if self._shutdown
            else (f"event queue full ({len(self._queue)} events, {self._queue.bytes} bytes)")
        )
        logger.warning("moesif: %s; dropped %d event(s) since the last message", reason, dropped)

    # -- workers -----------------------------------------------------------------------------------------------

    def _run(self) -> None:
        queue = self._queue
        try:
            while True:
                if self._deferred:
                    self._run_deferred()
                batch = queue.take(self.settings.event_batch_timeout)
                if not batch:
                    if self._shutdown:
                        return
                    continue
                try:
                    self._process(batch)
                except Exception:
                    logger.warning("moesif: worker error; %d event(s) lost", len(batch), exc_info=True)
                    self.stats.add(failed=len(batch))
                finally:
                    queue.done(len(batch))
        finally:
            if not self._shutdown:
                self._running = False  # the next capture restarts us

    def _await_config(self) -> None:
        """Hold the first undecided captures until the first config is known, within the bound (and within a
        flush's deadline), so they are sampled at the rate in force with its weight."""
        until = self.remote.first_wait_until
        deadline = self._deadline
        if deadline is not None:
            until = min(until, deadline)
        self.remote.wait_known(until - time.monotonic())

    def _process(self, batch: List[Frozen]) -> None:
        if not self.remote.known and not self._shutdown and any(not raw[FROZEN_WEIGHT] for raw in batch):
            self._await_config()
        events: List[Dict[str, Any]] = []
        failed = sampled_out = 0
        build = self.builder.build
        config, _ = self.remote.current()
        # what the request path left undecided (the default config: everything, weight 1) is decided here, per
        # event only when the config samples less than everything
        sample_late = not config.samples_everything and config.known
        clock = time.perf_counter
        hand_over = clock() + GIL_HAND_OVER
        for raw in batch:
            event = build(raw, True)
            if clock() >= hand_over:
                # hand the GIL to the app's threads (an event loop) every 1 ms of building, not every 5 ms (the
                # interpreter's switch interval); not after every event, where the switches cost more than the
                # building
                time.sleep(0)
                hand_over = clock() + GIL_HAND_OVER
            if event is None:
                failed += 1
            elif sample_late and not raw[FROZEN_WEIGHT] and not self._sample_late(event):
                sampled_out += 1
            else:
                events.append(event)
        body, unserialisable = _serialise(events)
        failed += unserialisable
        if failed or sampled_out:
            self.stats.add(failed=failed, sampled_out=sampled_out)
        if body is not None:
            self._ship(body, len(events) - unserialisable, events)

    def _sample_late(self, event: Dict[str, Any]) -> bool:
        """Decide for an event the request path left undecided; sets its ``weight``. ``False``: drop it."""
        config, _ = self.remote.current()
        if config.samples_everything or not config.known:  # still unknown after the wait: keep it, unweighted
            return True
        try:
            req = event.get("request") or {}
            resp = event.get("response") or {}
            status = resp.get("status")
            fields = sampling_fields(
                req.get("verb"),
                urlsplit(str(req.get("uri") or "")).path or "/",
                req.get("ip_address"),
                status if isinstance(status, int) else None,
            )
            keep, weight = draw(sampling_rate(config, fields, event.get("user_id"), event.get("company_id")), _rng)
        except Exception:
            logger.debug("moesif: sampling failed; keeping the event", exc_info=True)
            return True
        event["weight"] = weight
        return keep

    def _sleep(self, seconds: float) -> bool:
        """Back off; a flush or shutdown wakes us early (``True``; the caller then re-checks its deadline). The
        wait is first spent compacting what waits in the queue (the collector is away: it only grows)."""
        end = time.monotonic() + seconds
        wakes = self._wakes
        while True:
            if self._deadline is None:  # not while a flush (at exit, say) waits: nothing will stay long then
                self._queue.compact(end)
            with self._signal:
                if self._wakes != wakes:  # a flush or shutdown notified while we compacted
                    return True
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                if self._signal.wait(min(remaining, COMPACT_EVERY)):
                    return True

    def _notice_config_etag(self, result: SendResult) -> None:
        if result.config_etag and self.on_config_etag is not None:
            try:
                self.on_config_etag(result.config_etag)
            except Exception:
                logger.debug("moesif: config refresh hook failed", exc_info=True)

    def _ship(self, body: bytes, n: int, events: List[Dict[str, Any]]) -> None:
        backoff = INITIAL_BACKOFF
        server_errors = 0
        spool = self._spool
        while True:
            if spool is not None and spool.take(body, n):  # the collector is down and memory is filling
                return
            if self._shutdown:
                self.stats.add(failed=n)
                return
            result = self.client.send_events(body)
            self._notice_config_etag(result)
            if result.ok:
                if spool is not None:
                    spool.note_up()
                self.stats.add(sent=n, batches=1)
                logger.debug("moesif: sent a batch of %d event(s)", n)
                return
            if result.status == 413 and n > 1:
                # too large for the collector: send it in halves rather than lose it
                logger.debug("moesif: batch of %d too large (413); splitting", n)
                for half in (events[: n // 2], events[n // 2 :]):
                    part, bad = _serialise(half)
                    if part is not None:
                        self._ship(part, len(half) - bad, half)
                return
            if not result.retryable:
                logger.warning("moesif: the collector refused a batch of %d event(s) (%s); dropped", n, result.error)
                self.stats.add(failed=n)  # after the log line: whoever watches the counter then sees both
                return
            if result.status is not None and result.status >= 500 and result.status != 503:
                server_errors += 1
                if server_errors >= MAX_SERVER_ERROR_ATTEMPTS:
                    self.stats.add(failed=n)
                    logger.warning(
                        "moesif: gave up on a batch of %d event(s) after %d server errors (%s)",
                        n,
                        server_errors,
                        result.error,
                    )
                    return
            self.stats.add(retried=1)
            if spool is not None:
                spool.note_down()
                if spool.take(body, n):
                    return
            wait, backoff = next_wait(backoff, result.retry_after)
            deadline = self._deadline
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stats.add(failed=n)
                    logger.warning("moesif: %d event(s) not sent before the flush deadline (%s)", n, result.error)
                    return
                wait = min(wait, remaining)
            logger.debug("moesif: batch of %d failed (%s); retrying in %.2fs", n, result.error, wait)
            if spool is not None:
                spool.sleep(wait, self._sleep)  # returns early once the batch should go to disk
            else:
                self._sleep(wait)

    # -- flushing ----------------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """``True`` once :meth:`shutdown` ran: captures are refused from then on."""
        return self._shutdown

    def pending(self) -> int:
        """Events queued or being sent (abandoned calls waiting to be recorded included)."""
        return self._queue.pending() + len(self._deferred)

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is queued now; wait at most ``timeout`` seconds. ``True`` if everything was handled (with
        ``SPOOL_DIR`` and the collector down, put on disk counts: the spool is also told to try again now)."""
        if self._pid != os.getpid():
            return True
        if self._deferred:
            self._run_deferred()
        if len(self._queue) and not self._running:
            self.start()
        deadline = time.monotonic() + timeout
        self._deadline = deadline
        if self._spool is not None:
            self._spool.kick()  # what is on disk is not waited for, but tried again now
        self._queue.hurry(True)
        with self._signal:
            self._wakes += 1
            self._signal.notify_all()  # a worker backing off retries now, within the deadline
        try:
            while self.pending():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if self._deferred:  # a response collected meanwhile
                    self._run_deferred()
                # poll with a deadline: workers make progress on their own; we only watch
                time.sleep(min(0.005, remaining))
            return True
        finally:
            self._queue.hurry(False)
            self._deadline = None

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Flush within ``timeout`` (default ``EXIT_FLUSH_TIMEOUT``) and stop the workers. Later captures are
        dropped and counted."""
        if self._shutdown:
            return True
        if timeout is None:
            timeout = self.settings.exit_flush_timeout
        done = self.flush(timeout) if self.pending() else True
        self._shutdown = True
        self._queue.wake(close=True)
        left = self._queue.clear()  # never taken by a worker; what is in flight is counted by its worker
        if left:
            self.stats.add(failed=left)
        if left or not done:
            logger.warning(
                "moesif: %d event(s) not sent at exit (collector unreachable within %.1fs)",
                left + self._queue.inflight,
                timeout,
            )
        with self._signal:
            self._wakes += 1
            self._signal.notify_all()
        if self._spool is not None:
            self._spool.stop()
        self.remote.stop()
        return done

    def snapshot(self) -> Dict[str, int]:
        """The counters: queued, sent, dropped, failed, retried, sampled_out, batches, and what is pending."""
        d = self.stats.snapshot()
        d["queued"] = self._queue.accepted
        d["dropped"] = self._queue.refused
        d["pending"] = self.pending()
        d.update(
            self._spool.snapshot() if self._spool is not None else {"spooled": 0, "spool_bytes": 0, "spool_dropped": 0}
        )
        return d

    def _after_fork_in_child(self) -> None:
        self._init_process_state()
        self.stats = Stats()
        self.remote.after_fork_in_child()


def _serialise(events: List[Dict[str, Any]]) -> tuple[Optional[bytes], int]:
    """The batch as JSON; an event that cannot be serialised (absurdly deep nesting) is left out alone.
    Returns ``(body or None, number left out)``."""
    if not events:
        return None, 0
    try:
        return dumps(events), 0
    except Exception:
        logger.debug("moesif: batch not serialisable as a whole; trying event by event", exc_info=True)
        parts = []
        for event in events:
            try:
                parts.append(dumps(event))
            except Exception:
                logger.warning("moesif: an event could not be serialised; dropped", exc_info=True)
        if not parts:
            return None, len(events)
        return b"[" + b",".join(parts) + b"]", len(events) - len(parts)


_AGENTS: weakref.WeakSet[Agent] = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:
    """One exit deadline for every agent in the process (not one each), never waiting longer."""
    agents = [a for a in list(_AGENTS) if a._pid == os.getpid() and not a._shutdown]
    if not agents:
        return
    deadline = time.monotonic() + max(a.settings.exit_flush_timeout for a in agents)
    for agent in agents:
        agent._queue.hurry(True)
    for agent in agents:
        try:
            agent.shutdown(max(0.0, deadline - time.monotonic()))
        except Exception:
            logger.warning("moesif: error during the exit flush; queued events may be lost", exc_info=True)


def _after_fork(ref: weakref.ReferenceType[Agent]) -> None:
    agent = ref()
    if agent is not None:
        agent._after_fork_in_child()
