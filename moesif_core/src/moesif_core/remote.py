"""Keeps the app config and governance rules fresh, in the background, never on the request path.

Fetched as soon as the agent is built (so the config is normally in force before the first request), every
:data:`REFRESH_INTERVAL` seconds, and soon after a batch response carries a config ETag different from the one held
(but no more often than every :data:`MIN_REFETCH_INTERVAL` seconds). A failed fetch or a malformed document keeps
the last good config (or the default: sample everything, no rules) and logs why.

Until the first fetch round ends the config is *unknown* (:data:`UNKNOWN_CONFIG`, ``known`` false): adapters then
capture every call undecided and the agent's worker decides them with the config that arrives
(:meth:`RemoteConfig.wait_known`, bounded by :data:`FIRST_CONFIG_WAIT`), so the rate in force is the rate applied;
governance has no rules to apply yet, so those calls go through. A pre-fork master's fetched config is inherited by
its children; each child starts its own refresher at its first request (:meth:`RemoteConfig.current`), not at
``fork()``, so a forked process that never serves a request fetches nothing.
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
#: The longest a worker holds its first undecided captures waiting for the first config (seconds, per process).
FIRST_CONFIG_WAIT = 3.0
#: The config in force before the first fetch round ends: decides nothing (see :attr:`AppConfig.known`).
UNKNOWN_CONFIG = AppConfig(known=False)

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
        self._state: State = (UNKNOWN_CONFIG, ())
        self.etag: Optional[str] = None
        #: how many fetch rounds completed in this process (tests and ``snapshot`` read it)
        self.fetches = 0
        self._last_fetch = float("-inf")
        self._thread: Optional[threading.Thread] = None
        self._stopped = False
        self._wanted_etag: Optional[str] = None
        self._init_process_state()

    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        #: one fetch at a time: a refresh asked for (``refresh_now``) never loses to an older one still running
        self._fetch_lock = threading.Lock()
        self._known = threading.Event()
        if self._state[0].known:
            self._known.set()
        #: set in a forked child: the next :meth:`current` starts the child's own refresher
        self._restart = False
        #: until when a worker may hold undecided captures waiting for the first config (monotonic seconds:
        #: :data:`FIRST_CONFIG_WAIT` after this process's refresher started; 0 while none started: no waiting)
        self.first_wait_until = 0.0

    def current(self) -> State:
        """The config and rules in force (an atomic read of one tuple; in a forked child, the first call also
        starts the child's refresher)."""
        if self._restart:
            self._restart = False
            self.ensure_started()
        return self._state

    @property
    def known(self) -> bool:
        """Whether a fetch round has ended (with the server's config, or the default after a failure)."""
        return self._state[0].known

    def wait_known(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the first fetch round to end; ``True`` if the config is known.

        For an app that wants governance rules in force from its very first request: call it once at start-up,
        after building the middleware (it never raises, and returns ``False`` when the collector is slow)."""
        if self.known:
            return True
        self._known.wait(max(0.0, timeout))
        return self.known

    def ensure_started(self) -> None:
        """Start the background refresher (the agent does it when built; idempotent, cheap). Never raises."""
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        try:
            with self._lock:
                if self._stopped:
                    return
                if self._thread is None or not self._thread.is_alive():
                    if not self.known and self._thread is None:
                        self.first_wait_until = time.monotonic() + FIRST_CONFIG_WAIT
                    self._thread = threading.Thread(target=self._run, name="moesif-config", daemon=True)
                    self._thread.start()
        except Exception:  # no thread to be had (interpreter shutting down, thread limit): serve with what we have
            logger.warning("moesif: could not start the config refresher", exc_info=True)

    def after_fork_in_child(self) -> None:
        """Called in a forked child: keep the parent's config and rules, drop its thread and locks, and start a
        refresher of our own at the first request."""
        self._thread = None
        self.fetches = 0
        self._init_process_state()
        self._restart = not self._stopped

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
        with self._fetch_lock:
            try:
                self._fetch()
            finally:  # however the first round ended, the config is known from now on (at worst, the default)
                config, rules = self._state
                if not config.known:
                    self._state = (AppConfig(), rules)
                self._known.set()

    def _run(self) -> None:
        while not self._stopped:
            wait = self.min_refetch_interval - (time.monotonic() - self._last_fetch)
            if wait > 0 and self._wake.is_set():
                time.sleep(wait)  # an ETag change soon after a fetch: honour the minimum interval
            self._wake.clear()
            if self._stopped:
                return
            try:
                self.refresh_now()
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
