"""Run a collector in-process: the API the other packages' tests use.

Example::

    from moesif_collector import Collector

    with Collector() as collector:              # temp database, free port, background thread
        options = {"APPLICATION_ID": "test", "BASE_URI": collector.url}
        ...                                     # drive the app under test
        events = collector.wait_for_events(3, timeout=10)
        collector.set_faults(mode="error500", times=2)   # the next 2 ingest requests fail

Everything lives in a temporary directory unless ``db_path`` (and optionally ``config_file`` and
``rules_file``) are given; the directory is removed by :meth:`Collector.stop`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Union

from .access import HostPolicy
from .app import CollectorApp
from .body import DEFAULT_MAX_BODY
from .config_store import config_store, rules_store
from .faults import FaultSettings
from .inflight import DEFAULT_MAX_INFLIGHT
from .server import CollectorHTTPServer
from .storage import CallFilter, Storage

PathArg = Union[str, "os.PathLike[str]", None]


def default_side_file(db_path: str, suffix: str) -> str:
    """Where the config/rules files go by default: beside the database (``x.db`` -> ``x.config.json``)."""
    root, _ = os.path.splitext(db_path)
    return f"{root}.{suffix}.json"


class Collector:
    """A collector server running in a background thread of this process.

    Create it, then :meth:`start` it (or use it as a context manager). ``url`` is the base URI to give
    to a middleware (``BASE_URI``); ``port`` is the bound port (``port=0`` picks a free one).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: PathArg = None,
        config_file: PathArg = None,
        rules_file: PathArg = None,
        config: dict[str, Any] | None = None,
        rules: list[Any] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        refresh_ms: int = 1000,
        verbose: bool = False,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        allowed_hosts: Sequence[str] = (),
        token: str | None = None,
    ) -> None:
        """Prepare (not start) a collector.

        ``db_path=None`` uses a fresh temporary directory for the database and both JSON files;
        ``db_path=":memory:"`` keeps the data in memory (and the JSON files in a temporary directory).
        ``config``/``rules``, when given, are written to the files at start (replacing their content).
        ``max_inflight`` bounds the body bytes all requests hold at once; ``allowed_hosts`` are ``Host`` names the
        page, ``/api`` and ``/_admin`` answer to besides the bound address and loopback names (``"*"``: any);
        ``token``, when given, is then needed by the page, ``/api`` and ``/_admin`` (see ``access.py``).
        """
        self._tmpdir: str | None = None
        if db_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="moesif-collector-")
            db = os.path.join(self._tmpdir, "collector.db")
        else:
            db = os.fspath(db_path)
        if db == ":memory:" and (config_file is None or rules_file is None) and self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="moesif-collector-")
        side_base = os.path.join(self._tmpdir, "collector.db") if self._tmpdir is not None else db
        self.db_path = db
        self.config_file = Path(config_file if config_file is not None else default_side_file(side_base, "config"))
        self.rules_file = Path(rules_file if rules_file is not None else default_side_file(side_base, "rules"))
        self._host = host
        self._requested_port = port
        self._initial_config = config
        self._initial_rules = rules
        self._max_body = max_body
        self._refresh_ms = refresh_ms
        self._verbose = verbose
        self._max_inflight = max_inflight
        self._allowed_hosts = tuple(allowed_hosts)
        self._token = token
        self._server: CollectorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._app: CollectorApp | None = None
        self._stopped = False

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> Collector:
        """Open the database, bind the port and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        if self._stopped:
            raise RuntimeError("a stopped Collector cannot be restarted; create a new one")
        if self.db_path != ":memory:":
            Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
        storage = Storage(self.db_path)
        try:
            config = config_store(self.config_file)
            rules = rules_store(self.rules_file)
            if self._initial_config is not None:
                config.write(self._initial_config)
            if self._initial_rules is not None:
                rules.write(self._initial_rules)
            app = CollectorApp(
                storage,
                config,
                rules,
                max_body=self._max_body,
                refresh_ms=self._refresh_ms,
                max_inflight=self._max_inflight,
                hosts=HostPolicy(self._host, self._allowed_hosts),
                token=self._token,
            )
            server = CollectorHTTPServer(self._host, self._requested_port, app, verbose=self._verbose)
        except BaseException:
            storage.close()
            raise
        self._app = app
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="moesif-collector", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections (hung ones too), close the database, remove temp files.

        Safe to call more than once.
        """
        if self._stopped:
            return
        self._stopped = True
        server, app, thread = self._server, self._app, self._thread
        if server is not None and app is not None:
            app.stopping.set()
            app.faults.release_all()
            server.shutdown()
            server.server_close()
            server.close_connections()
            if thread is not None:
                thread.join(timeout=5)
            app.storage.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> Collector:
        """Start on entering a ``with`` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving the ``with`` block."""
        self.stop()

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def app(self) -> CollectorApp:
        """The running app state (storage, config stores, faults)."""
        if self._app is None:
            raise RuntimeError("the collector is not started")
        return self._app

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise RuntimeError("the collector is not started")
        return self._server.port

    @property
    def host(self) -> str:
        """The host as it appears in :attr:`url`."""
        return f"[{self._host}]" if ":" in self._host else self._host

    @property
    def url(self) -> str:
        """Base URI for clients, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    # -- reading what was received -----------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """Every stored event, as the JSON the client sent, oldest first."""
        return self.app.storage.events()

    def count_events(self) -> int:
        """How many events are stored."""
        return self.app.storage.count_events()

    def wait_for_events(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least ``n`` events are stored and return them all (oldest first).

        Wakes up on every write in this process and re-checks at least every 50 ms (for writers in
        other processes sharing the database). Raises ``TimeoutError`` (with the count reached) when
        ``timeout`` seconds pass first.
        """
        storage = self.app.storage
        deadline = time.monotonic() + timeout
        while True:
            version = storage.version
            count = storage.count_events()
            if count >= n:
                return storage.events()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"expected at least {n} events within {timeout} s, got {count}")
            storage.wait_for_change(version, min(0.05, remaining))

    def calls(self, path: str = "", status: str = "", user: str = "", limit: int = 1000) -> list[dict[str, Any]]:
        """Event summaries (indexed columns) matching the page's filters, newest first."""
        return self.app.storage.calls(CallFilter(path=path, status=status, user=user), limit=limit)

    def users(self) -> list[dict[str, Any]]:
        """Stored user profiles (latest per ``user_id``)."""
        return self.app.storage.profiles("users")

    def companies(self) -> list[dict[str, Any]]:
        """Stored company profiles (latest per ``company_id``)."""
        return self.app.storage.profiles("companies")

    def subscriptions(self) -> list[dict[str, Any]]:
        """Stored subscriptions (latest per ``subscription_id``)."""
        return self.app.storage.profiles("subscriptions")

    def requests(self) -> list[dict[str, Any]]:
        """The ``/v1`` request log: every attempt, including refused and faulted ones."""
        return self.app.storage.requests()

    def stats(self) -> dict[str, Any]:
        """The totals shown on the page and by ``stats``."""
        return self.app.storage.stats()

    def clear(self) -> None:
        """Delete everything stored (events, profiles, request log)."""
        self.app.storage.clear()

    # -- steering ----------------------------------------------------------------------------------

    def set_faults(
        self,
        mode: str = "ok",
        *,
        retry_after: int = 2,
        delay: float = 0.0,
        times: int | None = None,
        scope: str = "ingest",
        hang: bool = False,
    ) -> FaultSettings:
        """Inject a fault (same fields and validation as ``POST /_admin/faults``); returns it."""
        settings = FaultSettings.from_json(
            {"mode": mode, "retry_after": retry_after, "delay": delay, "times": times, "scope": scope, "hang": hang}
        )
        self.app.faults.set(settings)
        return settings

    def reset_faults(self) -> None:
        """Back to normal behaviour (hung requests are released and closed)."""
        self.app.faults.set(FaultSettings())

    def set_config(self, config: dict[str, Any]) -> str:
        """Replace the app config file; returns the new ``X-Moesif-Config-ETag``."""
        self.app.config.write(config)
        return self.app.config_etag()

    def set_rules(self, rules: list[Any]) -> str:
        """Replace the governance rules file; returns the new ``X-Moesif-Config-ETag``."""
        self.app.rules.write(rules)
        return self.app.config_etag()

    @property
    def config_etag(self) -> str:
        """The current ``X-Moesif-Config-ETag``."""
        return self.app.config_etag()


def start_collector(**kwargs: Any) -> Collector:
    """Create and start a :class:`Collector` (same keyword arguments); remember to ``stop()`` it."""
    return Collector(**kwargs).start()
