"""One class attribute replaced by a wrapper of what was there, and put back exactly.

:meth:`Patch.uninstall` restores the original function object when our wrapper is still the one on the class. If
another library wrapped ours since (an APM agent started after us), taking ours out would remove theirs too, so
ours stays in their chain and the wrappers pass straight through while capture is off; a later start reuses it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

Wrapper = Callable[..., Any]


class Patch:
    """``owner.name`` wrapped by ``make(original)``; install and uninstall are idempotent (callers hold a lock)."""

    __slots__ = ("owner", "name", "make", "original", "wrapper", "_had_own")

    def __init__(self, owner: type, name: str, make: Callable[[Wrapper], Wrapper]) -> None:
        self.owner = owner
        self.name = name
        self.make = make
        self.original: Optional[Wrapper] = None
        self.wrapper: Optional[Wrapper] = None
        self._had_own = False

    @property
    def on_top(self) -> bool:
        """Our wrapper is the attribute the class holds now."""
        return self.wrapper is not None and self.owner.__dict__.get(self.name) is self.wrapper

    def install(self) -> None:
        if self.wrapper is not None:  # ours is in place, on top or inside someone else's wrapper
            return
        self._had_own = self.name in self.owner.__dict__
        original = self.owner.__dict__[self.name] if self._had_own else getattr(self.owner, self.name)
        self.original = original
        self.wrapper = self.make(original)
        setattr(self.owner, self.name, self.wrapper)

    def uninstall(self) -> bool:
        """Put the original back; ``False`` when ours is buried under another wrapper and stays (as a no-op)."""
        if self.wrapper is None:
            return True
        if not self.on_top:
            return False
        if self._had_own:
            setattr(self.owner, self.name, self.original)
        else:
            delattr(self.owner, self.name)
        self.original = None
        self.wrapper = None
        return True
