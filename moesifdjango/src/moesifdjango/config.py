"""``settings.MOESIF_MIDDLEWARE``, read and validated once, and the one :class:`~moesif_core.Agent` behind it.

Django builds a middleware object for every handler it loads (the WSGI handler, the ASGI handler, each test
``Client``...), and the README builds more with ``moesif_middleware(None)`` for profile updates. All of them share
one validated :class:`~moesif_core.Settings` and one :class:`~moesif_core.Agent` (queue, workers, pooled HTTP
session) per settings dict per process. The cache is keyed by the dict's identity and holds the dict, so the key
cannot be reused by another object while the entry lives.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, Mapping, Tuple

from django.core.exceptions import ImproperlyConfigured

from moesif_core import Agent, Settings

from .outgoing import start_outgoing_capture
from .version import USER_AGENT

logger = logging.getLogger("moesif")

#: Where the user writes the settings; every settings error message starts with it.
WHERE = "settings.MOESIF_MIDDLEWARE"

#: moesifdjango 2.3.13's defaults where they differ from the core's: batches of 25, sent every 2 s at the latest
#: (the original's fixed interval; a full batch goes at once here).
DJANGO_DEFAULTS: Mapping[str, Any] = {"BATCH_SIZE": 25, "EVENT_BATCH_TIMEOUT": 2}


class MoesifSettingsError(ImproperlyConfigured, ValueError, TypeError):
    """A wrong ``MOESIF_MIDDLEWARE``: Django's ``ImproperlyConfigured``, and also a ``ValueError``/``TypeError`` (what
    the core raises), so code written against either catches it."""


_lock = threading.Lock()
_agents: Dict[int, Tuple[Any, Settings, Agent]] = {}


def read_settings() -> Any:
    """``django.conf.settings.MOESIF_MIDDLEWARE`` as the user wrote it; a clear error when it is missing."""
    from django.conf import settings

    try:
        value = settings.MOESIF_MIDDLEWARE
    except AttributeError:
        raise MoesifSettingsError(
            f"{WHERE} is not set. Add MOESIF_MIDDLEWARE = {{'APPLICATION_ID': 'your Moesif Application Id'}} "
            "to your Django settings."
        ) from None
    return value


def agent_for(options: Any) -> Tuple[Settings, Agent]:
    """The validated settings and the agent for ``options`` (the user's dict), made once per process."""
    key = id(options)
    entry = _agents.get(key)
    if entry is not None and entry[0] is options:
        return entry[1], entry[2]
    with _lock:
        entry = _agents.get(key)
        if entry is not None and entry[0] is options:
            return entry[1], entry[2]
        try:
            settings = Settings.from_mapping(options, where=WHERE, defaults=DJANGO_DEFAULTS)
        except (ValueError, TypeError) as exc:
            raise MoesifSettingsError(str(exc)) from None
        agent = Agent(settings, user_agent=USER_AGENT)
        _agents[key] = (options, settings, agent)
    logger.debug("moesif: moesifdjango started (%s)", settings.describe())
    if settings.capture_outgoing_requests:
        start_outgoing_capture(settings, agent)
    return settings, agent


def flush(timeout: float = 5.0) -> bool:
    """Send every event queued by this process now, waiting at most ``timeout`` seconds in all."""
    import time

    deadline = time.monotonic() + timeout
    ok = True
    for _, _, agent in list(_agents.values()):
        ok = agent.flush(max(0.0, deadline - time.monotonic())) and ok
    return ok


def wait_for_config(timeout: float = 5.0) -> bool:
    """Wait at most ``timeout`` seconds in all for the config and governance rules of every middleware built in
    this process (``get_wsgi_application()``/``get_asgi_application()`` builds them); ``True`` once all are known.

    Only for an app whose rules must hold from its very first request (sampling never needs it): call it in
    ``wsgi.py``/``asgi.py`` after building the application. Never raises.
    """
    import time

    deadline = time.monotonic() + timeout
    ok = True
    for _, _, agent in list(_agents.values()):
        ok = agent.wait_for_config(max(0.0, deadline - time.monotonic())) and ok
    return ok


def shutdown(timeout: float = 5.0) -> None:
    """Flush and stop every agent of this process and forget them (the next middleware starts afresh).

    For tests and for code that reconfigures ``MOESIF_MIDDLEWARE`` at run time; a server never needs it (the
    queue is flushed at interpreter exit).
    """
    with _lock:
        entries = list(_agents.values())
        _agents.clear()
    for _, _, agent in entries:
        agent.shutdown(timeout)
