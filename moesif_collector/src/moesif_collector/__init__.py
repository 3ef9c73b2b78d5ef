"""moesif-collector: a local, Moesif-compatible ingestion server for tests, demos and development.

Point any Moesif middleware's ``BASE_URI`` at it to see the API calls it records. In-process use::

    from moesif_collector import Collector
    with Collector() as c:
        ...  # BASE_URI = c.url
        c.wait_for_events(1, timeout=5)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__version__: str
try:  # the family's one version, written into the distribution's metadata at build time
    __version__ = version("moesif-collector")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

from .collector import Collector, start_collector
from .faults import FaultSettings

__all__ = ["Collector", "FaultSettings", "__version__", "start_collector"]
