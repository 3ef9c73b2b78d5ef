"""The installed distribution's version: the family's one (see :mod:`moesif_core.version`)."""

from __future__ import annotations

from moesif_core.version import distribution_version

__version__ = distribution_version("moesifdjango")
#: The ``User-Agent`` of every call to the collector, as the original's ``moesifdjango-python/<version>``.
USER_AGENT = f"moesifdjango-python/{__version__}"
