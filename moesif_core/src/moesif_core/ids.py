"""Transaction ids for ``X-Moesif-Transaction-Id``: which one a call gets, and new ones made cheaply.

:func:`transaction_id_for` is the one rule every adapter follows: a caller's ``X-Moesif-Transaction-Id`` is reused
when it is a sane token, so an upstream service that sent one finds its own id on the response and in Moesif (the
originals reused any non-empty value). A sane token is 1 to 128 characters, each a letter, a digit or one of
``- . _ ~ : + / =``: uuids, ULIDs, hex and base64 trace ids and ``service:request-42`` are reused; an empty value,
one with a space, a control or a non-ASCII character, or a longer one gets a new id instead (the event's request
header then shows the id the call got, not the caller's).

``str(uuid.uuid4())`` reads ``os.urandom`` on every call (~6 us here); an id only has to be unique, not secret, so
ours come from a private generator seeded from ``os.urandom`` and re-seeded in every forked child (~1.5 us).
"""

from __future__ import annotations

import os
import random
import re
from typing import Optional

_rng = random.Random()
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's ids
    os.register_at_fork(after_in_child=_rng.seed)
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)

#: The longest incoming id that is reused.
MAX_INCOMING_TRANSACTION_ID = 128
_SANE_ID = re.compile(rf"[A-Za-z0-9._~:+/=-]{{1,{MAX_INCOMING_TRANSACTION_ID}}}").fullmatch


def new_transaction_id() -> str:
    """A random (version 4) UUID, as text."""
    h = "%032x" % (_rng.getrandbits(128) & _CLEAR | _SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def transaction_id_for(incoming: Optional[str]) -> str:
    """The id of one call: ``incoming`` (the request's ``X-Moesif-Transaction-Id`` value, ``None`` when absent)
    when it is a sane token, else a new one. Adapters hand over the raw header value (ASGI's bytes decoded as
    latin-1); a handler that sets the response header itself is a framework matter the adapter settles first."""
    if incoming and _SANE_ID(incoming) is not None:
        return incoming
    return new_transaction_id()
