"""Keeps the app config and governance rules fresh, in the background, never on the request path.

Fetched at start, every :data:`REFRESH_INTERVAL` seconds, and soon after a batch response carries a config ETag
different from the one held (but no more often than every :data:`MIN_REFETCH_INTERVAL` seconds). A failed fetch or
a malformed document keeps the last good config (or the default: sample everything, no rules) and logs why.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Optional, Sequence, Tuple

import requests

from .appconfig import AppConfig, Rule, parse_rules
from .client import CONFIG_ETAG_HEADER, IngestionClient

logger = logging.getLogger("moesif")

REFRESH_INTERVAL = 60.0
MIN_REFETCH_INTERVAL = 5.0

State = Tuple[AppConfig, Sequence[Rule]]


class RemoteConfig:
    def __init__(
        self,
        client: IngestionClient,
        refresh_interval: float = REFRESH_INTERVAL,
        min_refetch_interval: float = MIN_REFETCH_INTERVAL,
    ) -> None:
        self.client = client
        self.refresh_interval = refresh_interval
        self.min_refetch_interval = min_refetch_interval
        self._state: State = (AppConfig(), ())
        self.etag: Optional[str] = None
        #: how many fetch rounds completed (tests and ``snapshot`` read it)
        self.fetches = 0
        self._last_fetch = float("-inf")
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._stopped = False
        self._wanted_etag: Optional[str] = None

    def current(self) -> State:
        """The config and rules in force (an atomic read of one tuple)."""
        return self._state

    def ensure_started(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._stopped:
                return
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._wake = threading.Event()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="moesif-config", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def notice_etag(self, etag: str) -> None:
        """Called with the ETag a batch response carried; wakes the fetcher when it changed."""
        if etag and etag != self.etag:
            self._wanted_etag = etag
            self._wake.set()

    def refresh_now(self) -> None:
        """Fetch config and rules in the calling thread (tests, and the background loop)."""
        self._fetch()

    def _run(self) -> None:
        while not self._stopped:
            wait = self.min_refetch_interval - (time.monotonic() - self._last_fetch)
            if wait > 0 and self._wake.is_set():
                time.sleep(wait)  # an ETag change soon after a fetch: honour the minimum interval
            self._wake.clear()
            if self._stopped:
                return
            try:
                self._fetch()
            except Exception:
                logger.warning("moesif: config refresh failed", exc_info=True)
            self._wake.wait(self.refresh_interval)

    def _fetch(self) -> None:
        self._last_fetch = time.monotonic()
        config, rules = self._state
        etag = self.etag
        try:
            resp = self.client.get("/v1/config")
            if resp.status_code == 200:
                config = AppConfig.parse(json.loads(resp.content))
                etag = resp.headers.get(CONFIG_ETAG_HEADER) or etag
            else:
                logger.warning("moesif: GET /v1/config answered HTTP %d; keeping the last config", resp.status_code)
        except ValueError as exc:
            logger.warning("moesif: /v1/config is malformed (%s); keeping the last good config", exc)
        except requests.RequestException as exc:
            logger.warning("moesif: could not fetch /v1/config (%s); keeping the last config", exc)
        try:
            resp = self.client.get("/v1/rules")
            if resp.status_code == 200:
                rules = parse_rules(json.loads(resp.content))
            else:
                logger.warning("moesif: GET /v1/rules answered HTTP %d; keeping the last rules", resp.status_code)
        except ValueError as exc:
            logger.warning("moesif: /v1/rules is malformed (%s); keeping the last good rules", exc)
        except requests.RequestException as exc:
            logger.warning("moesif: could not fetch /v1/rules (%s); keeping the last rules", exc)
        self._state = (config, tuple(rules))
        # the batch ETag that caused this fetch is now held, even if /v1/config answered with another (or none):
        # otherwise every batch would trigger a refetch
        self.etag = self._wanted_etag or etag
        self._wanted_etag = None
        self.fetches += 1
        logger.debug("moesif: config refreshed (etag %s, %d rule(s))", etag, len(rules))
