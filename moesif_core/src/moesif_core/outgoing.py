"""``CAPTURE_OUTGOING_REQUESTS``: capture the app's own ``requests`` (and ``httpx``) calls with moesifpythonrequest.

Shared by the adapters. The import is guarded (the core does not depend on moesifpythonrequest; every adapter
does): a missing package or a failing start is logged, never raised into the app. Ours is started with the
middleware's agent, so outgoing events share its queue, workers and masking (``moesifpythonrequest.start(settings,
agent)``; once per process, however many middlewares ask). The original moesifpythonrequest, which has no
``start``, is started as the original moesifasgi did: ``StartCapture().start_capture_outgoing(settings_dict)``.
"""

from __future__ import annotations

import importlib
import logging

from .agent import Agent
from .settings import Settings

logger = logging.getLogger("moesif")


def start_outgoing_capture(settings: Settings, agent: Agent) -> bool:
    """Start capturing outgoing calls; ``True`` if moesifpythonrequest accepted. Never raises."""
    try:
        module = importlib.import_module("moesifpythonrequest")
    except ImportError:
        logger.warning(
            "moesif: CAPTURE_OUTGOING_REQUESTS is on but moesifpythonrequest is not installed; outgoing calls are not "
            "captured. Install it with: pip install moesifpythonrequest (a dependency of every adapter)"
        )
        return False
    try:
        start = getattr(module, "start", None)
        if callable(start):
            start(settings, agent)
        else:  # the original package
            legacy = importlib.import_module("moesifpythonrequest.start_capture.start_capture")
            legacy.StartCapture().start_capture_outgoing(dict(settings.raw))
    except Exception:
        logger.warning("moesif: could not start capturing outgoing requests; incoming capture goes on", exc_info=True)
        return False
    logger.debug("moesif: capturing outgoing requests")
    return True
