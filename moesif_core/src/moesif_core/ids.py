"""Transaction ids for ``X-Moesif-Transaction-Id``: random version-4 UUIDs, cheaply.

``str(uuid.uuid4())`` reads ``os.urandom`` on every call (~6 us here); an id only has to be unique, not secret, so
ours come from a private generator seeded from ``os.urandom`` and re-seeded in every forked child (~1.5 us).
"""

from __future__ import annotations

import os
import random

_rng = random.Random()
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's ids
    os.register_at_fork(after_in_child=_rng.seed)
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)


def new_transaction_id() -> str:
    h = "%032x" % (_rng.getrandbits(128) & _CLEAR | _SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
