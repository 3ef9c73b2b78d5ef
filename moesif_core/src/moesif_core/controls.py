"""``flush()`` and ``shutdown()`` on a middleware object: the agent's, for scripts, tests and short-lived workers.

Both block (they wait on the network): call them from a thread, not from an event loop. A server never needs
them: the queue is flushed at interpreter exit within ``EXIT_FLUSH_TIMEOUT``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .agent import Agent


class FlushControl:
    """``flush()`` for a middleware whose agent may be shared (Django's: one per settings dict)."""

    agent: Agent

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is queued now, waiting at most ``timeout`` seconds. ``True`` if everything was handled."""
        return self.agent.flush(timeout)


class AgentControls(FlushControl):
    """``flush()`` and ``shutdown()`` for a middleware that owns its agent."""

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Flush within ``timeout`` (default ``EXIT_FLUSH_TIMEOUT``) and stop the worker threads."""
        return self.agent.shutdown(timeout)
