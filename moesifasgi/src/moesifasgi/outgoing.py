"""``CAPTURE_OUTGOING_REQUESTS``: start outgoing capture (``moesifpythonrequest``) once per process, with this
middleware's agent, so outgoing events share its queue, workers and masking (see
:func:`moesif_core.outgoing.start_outgoing_capture`).
"""

from __future__ import annotations

from moesif_core.outgoing import start_outgoing_capture

__all__ = ["start_outgoing_capture"]
