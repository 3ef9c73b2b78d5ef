"""The collector's shared state, independent of HTTP: storage, config files, faults and limits."""

from __future__ import annotations

import threading

from .access import HostPolicy
from .body import DEFAULT_MAX_BODY
from .config_store import JsonFileStore, Snapshot, etag_of
from .faults import FaultController
from .inflight import DEFAULT_MAX_INFLIGHT, InflightBudget
from .storage import Storage


class CollectorApp:
    """Everything request handlers share; one per running server."""

    def __init__(
        self,
        storage: Storage,
        config: JsonFileStore,
        rules: JsonFileStore,
        max_body: int = DEFAULT_MAX_BODY,
        refresh_ms: int = 1000,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        hosts: HostPolicy | None = None,
        token: str | None = None,
    ) -> None:
        """Bundle the parts; ``refresh_ms`` is the web page's default polling interval, ``max_inflight`` the
        body bytes all requests may hold at once (see ``inflight.py``), ``hosts`` the ``Host`` names the page,
        ``/api`` and ``/_admin`` answer to (see ``access.py``; default: loopback names only), ``token`` the secret
        they need when set (see ``access.py``)."""
        self.storage = storage
        self.config = config
        self.rules = rules
        self.max_body = max_body
        self.refresh_ms = refresh_ms
        self.faults = FaultController()
        self.inflight = InflightBudget(max_inflight)
        self.hosts = hosts if hosts is not None else HostPolicy("127.0.0.1")
        self.token = token or None
        self.stopping = threading.Event()

    def config_etag(self) -> str:
        """The ``X-Moesif-Config-ETag`` value: a hash of the config file *and* the rules file.

        Clients refetch config and rules when this changes (docs/wire.md), so covering both files makes an
        edit to either reach running clients on their next batch, not only at their 60 s refresh.
        """
        config = self.config.snapshot()
        rules: Snapshot | None = self.rules.snapshot_or_none()
        return etag_of(config.etag.encode("ascii") + b"/" + (rules.etag.encode("ascii") if rules else b"-"))
