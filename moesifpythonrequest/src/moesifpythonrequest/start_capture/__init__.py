"""The original's import path: ``from moesifpythonrequest.start_capture.start_capture import StartCapture``."""

from __future__ import annotations

from .start_capture import StartCapture

__all__ = ["StartCapture"]
