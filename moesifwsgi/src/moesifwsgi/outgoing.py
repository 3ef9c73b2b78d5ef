"""``CAPTURE_OUTGOING_REQUESTS: True``: start outgoing capture (``moesifpythonrequest``) once per process.

The capture patches the ``requests`` library in this process; a child forked from it (gunicorn ``--preload``)
inherits the patch, so "once" means once for the whole process tree that shares that memory image.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any, Mapping

logger = logging.getLogger("moesif")

_lock = threading.Lock()
_started = False


def start_outgoing_capture(settings: Mapping[str, Any]) -> bool:
    """Start outgoing capture with the user's settings dict, unless already started. Never raises."""
    global _started
    with _lock:
        if _started:
            return True
        try:
            module = importlib.import_module("moesifpythonrequest.start_capture.start_capture")
        except ImportError:
            logger.warning(
                "moesif: CAPTURE_OUTGOING_REQUESTS is True but moesifpythonrequest is not installed; outgoing calls "
                "are not captured (pip install 'moesifwsgi[outgoing]')"
            )
            return False
        try:
            module.StartCapture().start_capture_outgoing(dict(settings))
        except Exception:
            logger.warning("moesif: could not start outgoing capture; incoming capture goes on", exc_info=True)
            return False
        _started = True
        logger.debug("moesif: outgoing capture started")
        return True


def _reset_for_tests() -> None:
    global _started
    with _lock:
        _started = False
