"""Starting and stopping outgoing capture: once per process, however many adapters ask for it."""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from typing import Any, List, Mapping, Optional, Union

from moesif_core import Agent, Settings

from . import _state
from ._patch import Patch
from .version import __version__

logger = logging.getLogger("moesif")

USER_AGENT = f"moesifpythonrequest-python/{__version__}"

_lock = threading.Lock()
#: The agent :func:`start` made itself (no agent given); :func:`stop` flushes and shuts it down.
_owned_agent: Optional[Agent] = None


def _patches() -> List[Patch]:
    from . import _requests

    patches = list(_requests.PATCHES)
    # httpx is optional: captured when installed, imported here (at start, never at our import) only then.
    if "httpx" in sys.modules or importlib.util.find_spec("httpx") is not None:
        try:
            from . import _httpx
        except Exception:  # an httpx too old or broken to patch must not stop requests capture
            logger.warning(
                "moesif: httpx is installed but could not be patched; its calls are not captured", exc_info=True
            )
        else:
            patches.extend(_httpx.PATCHES)
    # aiohttp's client likewise
    if "aiohttp" in sys.modules or importlib.util.find_spec("aiohttp") is not None:
        try:
            from . import _aiohttp
        except Exception:  # an aiohttp too old or broken to patch must not stop the others' capture
            logger.warning(
                "moesif: aiohttp is installed but could not be patched; its client calls are not captured",
                exc_info=True,
            )
        else:
            patches.extend(_aiohttp.PATCHES)
    return patches


def start(settings: Union[Settings, Mapping[str, Any], None] = None, agent: Optional[Agent] = None) -> bool:
    """Capture the outgoing calls made with ``requests`` (and ``httpx`` when installed) in this process.

    ``settings``: the adapter's :class:`moesif_core.Settings` or the user's dict (validated; ``APPLICATION_ID``
    required); the ``*_OUTGOING`` options and ``MAX_BODY_SIZE`` are read from it. ``agent``: the adapter's
    agent, so outgoing events share its queue, workers and masking; without one, an agent is made from
    ``settings`` (and shut down by :func:`stop`). With ``agent`` alone, its settings are used.

    Idempotent per process: the first start wins; later ones (another adapter, a second ``StartCapture``) change
    nothing but teach capture their ``BASE_URI`` so their own calls are never captured either, unless the agent
    in use has been shut down by its adapter since, in which case the new start takes over. Returns ``True``
    when this call turned capture on (or took it over). Never blocks and makes no network call. Raises
    ``ValueError``/``TypeError`` for invalid settings only.
    """
    global _owned_agent
    if settings is None:
        if agent is None:
            raise TypeError("moesifpythonrequest.start() needs the Moesif settings (a dict or Settings) or an Agent.")
        resolved = agent.settings
    elif isinstance(settings, Settings):
        resolved = settings
    else:
        resolved = Settings.from_mapping(settings, where="the outgoing capture options")
    with _lock:
        _state.add_internal_prefix(resolved.base_uri)
        if agent is not None:
            _state.add_internal_prefix(agent.client.base_uri)
        current = _state.ACTIVE
        if current is not None and not _is_shut_down(current.agent):
            logger.debug("moesif: outgoing capture is already on; keeping the first settings")
            return False
        # off, or on with an agent its adapter has shut down since (a test tearing a middleware down): this start
        # takes over, or outgoing events would go nowhere for the rest of the process
        patches = _patches()  # import before creating anything, so a failure leaves nothing behind
        owned = None
        if agent is None:
            agent = owned = Agent(resolved, user_agent=USER_AGENT)
        active = _state.Active(
            agent,
            skip=resolved.skip_outgoing,
            identify_user=resolved.identify_user_outgoing,
            identify_company=resolved.identify_company_outgoing,
            get_session_token=resolved.get_session_token_outgoing,
            get_metadata=resolved.get_metadata_outgoing,
            log_body=resolved.log_body_outgoing,
            max_body=resolved.max_body_size,
        )
        for patch in patches:
            patch.install()
        _owned_agent = owned  # a previous owned agent can only be one already shut down
        _state.ACTIVE = active
    logger.debug("moesif: capturing outgoing calls (%d methods wrapped)", len(patches))
    return True


def _is_shut_down(agent: Agent) -> bool:
    return agent.closed


def stop(timeout: Optional[float] = None) -> bool:
    """Stop capturing and restore ``requests`` (and ``httpx``) exactly as they were. Idempotent.

    An agent that :func:`start` made itself is flushed (at most ``timeout`` seconds, default its
    ``EXIT_FLUSH_TIMEOUT``) and shut down; an adapter's agent is left alone. Returns ``True`` when capture was on.
    """
    global _owned_agent
    with _lock:
        active = _state.ACTIVE
        _state.ACTIVE = None
        owned, _owned_agent = _owned_agent, None
        for patch in _installed_patches():
            if not patch.uninstall():
                logger.debug(
                    "moesif: %s.%s was wrapped again after us; ours stays in its chain as a no-op",
                    patch.owner.__name__,
                    patch.name,
                )
        _state.reset_internal_prefixes()
    if owned is not None:
        owned.shutdown(timeout)
    return active is not None


def _installed_patches() -> List[Patch]:
    patches: List[Patch] = []
    for name in ("_requests", "_httpx", "_aiohttp"):
        module = sys.modules.get(f"{__package__}.{name}")
        if module is not None:
            patches.extend(module.PATCHES)
    return patches


def is_active() -> bool:
    """Outgoing capture is on."""
    return _state.ACTIVE is not None


def get_agent() -> Optional[Agent]:
    """The agent outgoing events go to while capture is on."""
    active = _state.ACTIVE
    return active.agent if active is not None else None


def flush(timeout: float = 5.0) -> bool:
    """Send the queued outgoing events now, waiting at most ``timeout`` seconds; ``True`` if all were handled."""
    agent = get_agent()
    return True if agent is None else agent.flush(timeout)
