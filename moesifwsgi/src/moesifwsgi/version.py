"""The moesifwsgi version (also in pyproject.toml); it goes into the ``User-Agent`` of what is sent."""

__version__ = "0.1.0"
