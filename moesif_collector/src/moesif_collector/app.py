"""The collector's shared state, independent of HTTP: storage, config files, faults and limits."""

from __future__ import annotations

import threading

from .body import DEFAULT_MAX_BODY
from .config_store import JsonFileStore, Snapshot, etag_of
from .faults import FaultController
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
    ) -> None:
        """Bundle the parts; ``refresh_ms`` is the web page's default polling interval."""
        self.storage = storage
        self.config = config
        self.rules = rules
        self.max_body = max_body
        self.refresh_ms = refresh_ms
        self.faults = FaultController()
        self.stopping = threading.Event()

    def config_etag(self) -> str:
        """The ``X-Moesif-Config-ETag`` value: a hash of the config file *and* the rules file.

        Clients refetch config and rules when this changes (docs/wire.md), so covering both files makes an
        edit to either reach running clients on their next batch, not only at their 60 s refresh.
        """
        config = self.config.snapshot()
        rules: Snapshot | None = self.rules.snapshot_or_none()
        return etag_of(config.etag.encode("ascii") + b"/" + (rules.etag.encode("ascii") if rules else b"-"))
