"""The installed distribution's version: the family's one (see :mod:`moesif_core.version`)."""

from __future__ import annotations

from moesif_core.version import distribution_version

__version__ = distribution_version("moesif-aiohttp")
