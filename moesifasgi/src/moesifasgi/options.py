"""What is particular to moesifasgi in the settings: the original's defaults, the user agent, and the limits the
middleware applies on the request path."""

from __future__ import annotations

from typing import Any, Dict

from .version import __version__

#: Sent as ``User-Agent`` on every call to the ingestion API.
USER_AGENT = f"moesifasgi-python/{__version__}"

#: Where error messages say the settings were written.
WHERE = "MoesifMiddleware(settings=...)"

#: moesifasgi 1.1.8's own defaults where they differ from other adapters'. Its README says ``BATCH_SIZE`` 25, but
#: its code uses 100 (``settings.get("BATCH_SIZE", 100)``); we keep what it did. ``EVENT_BATCH_TIMEOUT`` is 1 s in
#: both. Everything else is the core's default, which is the originals' (see ``moesif_core.Settings``).
DEFAULTS: Dict[str, Any] = {
    "BATCH_SIZE": 100,
    "EVENT_BATCH_TIMEOUT": 1,
}

#: A plain (non-``async``) callback that once took longer than this, in seconds, is run in a worker thread from
#: then on, so that one that blocks (a database lookup, an HTTP call) stops stalling the event loop.
SLOW_SYNC_CALLBACK = 0.005

#: Status recorded when the client went away before the app started its response (nginx's "client closed request").
CLIENT_CLOSED_STATUS = 499

#: ``X-Moesif-Transaction-Id`` as it goes on the wire: ASGI header names are lower-case bytes.
TRANSACTION_ID_HEADER_BYTES = b"x-moesif-transaction-id"
