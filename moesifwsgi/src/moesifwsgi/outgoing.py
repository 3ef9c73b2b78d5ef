"""``CAPTURE_OUTGOING_REQUESTS: True``: start outgoing capture (``moesifpythonrequest``) once per process, with this
middleware's agent, so outgoing events share its queue, workers and masking (see
:func:`moesif_core.outgoing.start_outgoing_capture`).

The capture patches the ``requests`` library in this process; a child forked from it (gunicorn ``--preload``)
inherits the patch, so "once" means once for the whole process tree that shares that memory image.
"""

from __future__ import annotations

from moesif_core.outgoing import start_outgoing_capture

__all__ = ["start_outgoing_capture"]
