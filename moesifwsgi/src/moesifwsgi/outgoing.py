"""``CAPTURE_OUTGOING_REQUESTS``: start outgoing capture (``moesifpythonrequest``) once per process, with this
middleware's agent, so outgoing events share its queue, workers and masking.

The adapter imports the capture package (the core never imports it); the core logs a missing package or a failing
start instead of raising (:func:`moesif_core.outgoing.start_outgoing_capture`).

The capture patches the ``requests`` library in this process; a child forked from it (gunicorn ``--preload``)
inherits the patch, so "once" means once for the whole process tree that shares that memory image.
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
