from __future__ import annotations

__version__ = "0.1.0"
#: The ``User-Agent`` of every call to the collector, as the original's ``moesifdjango-python/<version>``.
USER_AGENT = f"moesifdjango-python/{__version__}"
