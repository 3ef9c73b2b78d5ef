"""When to try the collector again: one schedule for the workers' batches and for the spool's drainer.

Exponential backoff with jitter (so processes sharing a collector spread out), honouring ``Retry-After`` as a
minimum but never for longer than :data:`MAX_RETRY_AFTER`, so a bad header cannot stall shipping for hours.
"""

from __future__ import annotations

import os
import random
from typing import Optional, Tuple

#: First retry delay, in seconds; doubled on each failure up to :data:`MAX_BACKOFF`, with jitter.
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 30.0
#: Longest ``Retry-After`` honoured.
MAX_RETRY_AFTER = 300.0
#: A batch the collector answers with a server error this many times in a row is given up (and counted failed);
#: connection failures, timeouts, 429 and 503 are retried for as long as the process lives.
MAX_SERVER_ERROR_ATTEMPTS = 10

#: Our own generator: the app's use of the ``random`` module (seeded tests, say) neither affects nor is affected by
#: our jitter.
_rng = random.Random()
if hasattr(os, "register_at_fork"):  # children of one pre-fork master must not back off in step
    os.register_at_fork(after_in_child=_rng.seed)


def next_wait(backoff: float, retry_after: Optional[float]) -> Tuple[float, float]:
    """``(seconds to wait now, backoff for the next failure)`` after a failed attempt at ``backoff``."""
    wait = backoff * _rng.uniform(0.5, 1.5)
    if retry_after is not None:  # honoured as a minimum, with jitter so processes spread out
        wait = max(min(retry_after, MAX_RETRY_AFTER), wait) * _rng.uniform(1.0, 1.2)
    return wait, min(backoff * 2, MAX_BACKOFF)
