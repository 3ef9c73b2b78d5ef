"""moesif-collector: a local, Moesif-compatible ingestion server for tests, demos and development.

Point any Moesif middleware's ``BASE_URI`` at it to see the API calls it records. In-process use::

    from moesif_collector import Collector
    with Collector() as c:
        ...  # BASE_URI = c.url
        c.wait_for_events(1, timeout=5)
"""

from __future__ import annotations

__version__ = "0.1.0"

from .collector import Collector, start_collector
from .faults import FaultSettings

__all__ = ["Collector", "FaultSettings", "__version__", "start_collector"]
