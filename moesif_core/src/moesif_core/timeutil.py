"""Wall-clock timestamps in the wire format: UTC, ISO-8601, milliseconds, no offset.

Times are taken on the request path as a float (``time.time()``: cheap, no timezone lookup) and formatted in the
worker. Formatting goes through ``time.gmtime``, so the machine's timezone setting (or the lack of tz data
in a container, which lost the originals their events) cannot change the result.
"""

from __future__ import annotations

import time

_last: tuple[int, str] = (-1, "")
#: ``"000"`` .. ``"999"``: an index is cheaper than formatting the milliseconds (twice per event).
_MILLIS = tuple(f"{ms:03d}" for ms in range(1000))


def format_time(epoch_seconds: float) -> str:
    """``1764111706.0094`` -> ``'2025-11-25T23:01:46.009'``. The ``...:SS.`` prefix of the last second is
    reused: events come in bursts within one second."""
    global _last
    whole = int(epoch_seconds // 1)
    cached_second, prefix = _last
    if cached_second != whole:
        t = time.gmtime(whole)
        prefix = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        _last = (whole, prefix)
    ms = int((epoch_seconds - whole) * 1000)
    return prefix + (_MILLIS[ms] if ms < 1000 else f"{ms:03d}")
