"""``CAPTURE_OUTGOING_REQUESTS``: the core's half of starting outgoing capture.

The core never imports an adapter: each adapter imports ``moesifpythonrequest`` (one of its pinned dependencies)
itself and hands its ``start`` here, with the middleware's agent, so outgoing events share its queue, workers and
masking (``moesifpythonrequest.start(settings, agent)`` starts capture once per process, however many middlewares
ask). What is shared is the rule that a missing package or a failing start is logged, never raised into the app.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from .agent import Agent
from .settings import Settings
from .version import __version__

logger = logging.getLogger("moesif")

#: ``moesifpythonrequest.start``: begins capturing this process's outgoing calls into ``agent``.
StartCapture = Callable[[Settings, Agent], object]


def start_outgoing_capture(start: Optional[StartCapture], settings: Settings, agent: Agent) -> bool:
    """Run ``start`` (``None``: moesifpythonrequest could not be imported); ``True`` if it ran. Never raises."""
    if start is None:
        logger.warning(
            "moesif: CAPTURE_OUTGOING_REQUESTS is on but moesifpythonrequest is not installed; outgoing calls are not "
            "captured. Install it with: pip install moesifpythonrequest==%s (this family's version; an older one is "
            "the original package)",
            __version__,
        )
        return False
    try:
        start(settings, agent)
    except Exception:
        logger.warning("moesif: could not start capturing outgoing requests; incoming capture goes on", exc_info=True)
        return False
    logger.debug("moesif: capturing outgoing requests")
    return True
