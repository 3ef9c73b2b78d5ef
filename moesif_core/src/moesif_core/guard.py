"""The two guards that keep SDK and user-callback errors out of the host app, and the rule around them.

No exception of ours or of a user callback may reach the app, and none may pass silently. The rule, which
ruff's ``BLE001`` holds the code to (a blind ``except`` must log its traceback, re-raise, or say why it need not):

- A user callback (``IDENTIFY_USER``, ``SKIP``...) is called through :func:`call_user`: a raising callback is
  logged as a warning naming its setting, and gives ``None``. Where it must be awaited or run in a thread, the
  caller's ``except Exception:`` logs :data:`CALLBACK_FAILED` with ``exc_info=True``.
- SDK code around the app's request path that has nothing to hand back goes in
  ``with capture_internal_exceptions("what we were doing"):``: a warning with the traceback, and the request goes
  on. Where the block must hand a fallback back (serve the request without capture, keep an event whose sampling
  failed) or runs for every request or chunk on a hot path (the context manager costs 1-3 us a use),
  the same rule is written out: ``except Exception:`` logging with ``exc_info=True``.
- A background thread (the worker, the config fetcher) and the exit flush catch ``Exception`` at the top of
  their loop and log with ``exc_info=True``, so a bug costs a batch, never the thread.
- An optional start-up step (outgoing capture, Tornado's automatic attachment) catches ``Exception``, logs with
  ``exc_info=True``, and the middleware goes on without that feature.
- These log at warning level; at debug only where the failure is expected (a client that went away in the middle
  of its body, a request whose body Django refuses to read) or loses nothing (a sampling draw that fails keeps the
  event; a batch that will not serialise whole is tried event by event).
- Everywhere else, the narrowest exception that can happen. ``except Exception`` without a logged traceback only
  where any exception means the same thing, with the reason on the line:
  ``except Exception:  # noqa: BLE001 - <why any exception means this>``.
- Exceptions the app's own code raised (a view, a generator, ``close()``) are re-raised unchanged once recorded.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

logger = logging.getLogger("moesif")


@contextmanager
def capture_internal_exceptions(what: str = "capturing the event") -> Iterator[None]:
    """Swallow and log any exception raised inside the block."""
    try:
        yield
    except Exception:
        logger.warning("moesif: error while %s; the request is not affected", what, exc_info=True)


#: The log line of a user callback that raised (``%s``: the setting's name, so the user knows which one to fix; the
#: event goes on without that field). Callers that cannot use :func:`call_user` (awaited callbacks, callbacks run in a
#: thread) log it from their own ``except Exception:`` with ``exc_info=True``.
CALLBACK_FAILED = "moesif: the %s callback raised; the event is sent without it"


def call_user(fn: Optional[Callable[..., Any]], name: str, *args: Any) -> Any:
    """Call a user callback (``IDENTIFY_USER`` and friends); ``None`` if it is unset or raises (logged as
    :data:`CALLBACK_FAILED`)."""
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:
        logger.warning(CALLBACK_FAILED, name, exc_info=True)
        return None
