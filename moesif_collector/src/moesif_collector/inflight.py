"""One bound on the body bytes all requests hold in memory at once.

Each request may be up to ``--max-body`` bytes on the wire and again after decompression, and its parsed JSON
costs two to three times that again; without a shared bound, a few concurrent large uploads multiply (six
concurrent 45 MB events took the collector from 28 MB to 950 MB). Every body byte a request reads or inflates is
reserved here first; when the budget is spent, the reader waits (bounded) for other requests to finish, and is
answered ``503`` with ``Retry-After`` if they do not: clients retry 503 like 429.

A request that needs more than the whole budget is let through when it holds everything reserved (no other
request has bytes in flight), so a body within ``--max-body`` is always accepted eventually.
"""

from __future__ import annotations

import threading

from .body import BodyError

DEFAULT_MAX_INFLIGHT = 100 * 1024 * 1024  # body bytes (raw plus inflated) held by all requests together
DEFAULT_WAIT = 5.0  # seconds a request waits for room before it is answered 503
RETRY_AFTER = 1  # seconds, in the 503's Retry-After


class BusyError(BodyError):
    """No room for a body right now: answered ``503`` with ``Retry-After``; the client retries."""

    def __init__(self, message: str) -> None:
        """A 503 whose body was not read (the connection is closed after it)."""
        super().__init__(503, message, drained=False, headers={"Retry-After": str(RETRY_AFTER)})


class InflightBudget:
    """Body bytes reserved by requests in progress, bounded by ``limit``; thread-safe."""

    def __init__(self, limit: int = DEFAULT_MAX_INFLIGHT, wait: float = DEFAULT_WAIT) -> None:
        """``limit`` bytes in all; a reservation waits at most ``wait`` seconds for room."""
        self.limit = limit
        self.wait = wait
        self._used = 0
        self.peak = 0
        self._room = threading.Condition()

    @property
    def used(self) -> int:
        """Bytes reserved now."""
        with self._room:
            return self._used

    def reserve(self, n: int, held: int) -> None:
        """Reserve ``n`` more bytes for a request that already holds ``held``; raises :class:`BusyError`.

        Granted when it fits, or when nobody else holds anything (a body over the budget goes alone).
        """
        with self._room:
            fits = self._room.wait_for(lambda: self._used + n <= self.limit or self._used <= held, self.wait)
            if not fits:
                raise BusyError(
                    f"busy: {self._used} body bytes in flight, {n} more would pass the {self.limit} byte bound;"
                    f" retry in {RETRY_AFTER} s"
                )
            self._used += n
            self.peak = max(self.peak, self._used)

    def release(self, n: int) -> None:
        """Give back ``n`` bytes (when a request is answered)."""
        if n:
            with self._room:
                self._used -= n
                self._room.notify_all()


class Reservation:
    """What one request has reserved; :meth:`release` gives it all back (the server calls it after answering)."""

    def __init__(self, budget: InflightBudget) -> None:
        """Start with nothing reserved."""
        self._budget = budget
        self.held = 0

    def __call__(self, n: int) -> None:
        """Reserve ``n`` more bytes (the ``reserve`` hook of ``body.read_raw`` and ``body.decode``)."""
        if n > 0:
            self._budget.reserve(n, self.held)
            self.held += n

    def release(self) -> None:
        """Give back everything reserved so far."""
        held, self.held = self.held, 0
        self._budget.release(held)
