"""The family's version at run time, read from the installed distribution's metadata.

The one place a release changes is the monorepo's ``VERSION`` file; the build writes it into each distribution's
metadata (and pins the siblings to it), so ``__version__``, the wheel and the ``User-Agent`` sent to the collector
can never disagree.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def distribution_version(name: str) -> str:
    """The installed version of distribution ``name``; ``0+unknown`` for a source tree that was never installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "0+unknown"


__version__ = distribution_version("moesif-core")
