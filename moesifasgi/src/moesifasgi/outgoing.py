"""``CAPTURE_OUTGOING_REQUESTS`` in moesifasgi: the middleware starts outgoing capture when it is built.

The adapter imports ``moesifpythonrequest`` (the core never does); the core logs a missing package or a failing
start (:func:`moesif_core.outgoing.start_outgoing_capture`).
"""

from __future__ import annotations

from moesif_core import outgoing
from moesif_core.agent import Agent
from moesif_core.settings import Settings


def start_outgoing_capture(settings: Settings, agent: Agent) -> bool:
    """Start capturing this process's outgoing calls into ``agent``; ``True`` if it started. Never raises."""
    try:
        import moesifpythonrequest
    except ImportError:
        return outgoing.start_outgoing_capture(None, settings, agent)
    return outgoing.start_outgoing_capture(moesifpythonrequest.start, settings, agent)
