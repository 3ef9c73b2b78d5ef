"""``StartCapture``, in the original's shape.

    from moesifpythonrequest.start_capture.start_capture import StartCapture
    StartCapture().start_capture_outgoing({"APPLICATION_ID": "...", "IDENTIFY_USER_OUTGOING": ...})

The options are the adapters' settings dict (``APPLICATION_ID``, ``BASE_URI``/``LOCAL_MOESIF_BASEURL``,
``LOCAL_DEBUG``, the ``*_OUTGOING`` callbacks, masks, ``MAX_BODY_SIZE``...). Unlike the original, starting makes no
network call (it neither blocks on a slow collector nor raises when it is down), honours ``BASE_URI`` whatever
``LOCAL_DEBUG`` says, and can be undone with :meth:`StartCapture.stop_capture_outgoing`.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .. import _capture


class StartCapture:
    """Process-wide: any instance starts and stops the same capture."""

    def start_capture_outgoing(self, options: Mapping[str, Any]) -> bool:
        """Start capturing (once per process); ``True`` if this call turned it on.

        Raises ``ValueError``/``TypeError`` naming the key when an option is invalid (the original raised for a
        missing ``APPLICATION_ID`` too).
        """
        return _capture.start(options)

    def stop_capture_outgoing(self, timeout: Optional[float] = None) -> bool:
        """Stop capturing, restore ``requests``/``httpx``, and flush what was captured (at most ``timeout`` s)."""
        return _capture.stop(timeout)
