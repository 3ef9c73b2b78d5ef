"""moesifpythonrequest: capture the outgoing API calls made with ``requests`` (and ``httpx``, ``aiohttp``).

Without a web framework, in the original's shape::

    from moesifpythonrequest.start_capture.start_capture import StartCapture
    StartCapture().start_capture_outgoing({"APPLICATION_ID": "your id"})

From an adapter (``CAPTURE_OUTGOING_REQUESTS: True``), sharing its agent (queue, workers, masking)::

    import moesifpythonrequest
    moesifpythonrequest.start(settings, agent)

Either way capture is on once per process: a second start changes nothing (one event per call), and
:func:`stop` puts ``requests.Session.send`` (and httpx's ``send``, aiohttp's ``ClientSession._request``) back exactly
as they were.
"""

from __future__ import annotations

from ._capture import flush, get_agent, is_active, start, stop
from .start_capture.start_capture import StartCapture
from .version import __version__

__all__ = ["StartCapture", "__version__", "flush", "get_agent", "is_active", "start", "stop"]
