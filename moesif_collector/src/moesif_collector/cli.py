"""Command line: ``serve``, ``tail``, ``stats`` and ``send-sample``.

``serve`` prints one machine-readable first line, ``moesif-collector listening on http://HOST:PORT``,
so scripts can start it with ``--port 0`` and read the port from it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any, Callable
from urllib.parse import quote, urlencode

from . import __version__
from .body import DEFAULT_MAX_BODY
from .collector import Collector
from .inflight import DEFAULT_MAX_INFLIGHT
from .loadgen import send_batches
from .storage import STATUS_CLASSES, CallFilter, Storage
from .terminal import call_line, stats_table
from .text import printable

DEFAULT_DB = "moesif-collector.db"
NOT_LOOPBACK_WARNING = (
    "moesif-collector: WARNING: listening on {host}, which other machines can reach. The page, /api and /_admin"
    " have no authentication: anyone who can reach this port can read every captured call (headers, bodies,"
    " tokens), inject faults and delete the data. Bind to 127.0.0.1 unless this network is yours alone, or set"
    " --token."
)
NOT_LOOPBACK_WITH_TOKEN = (
    "moesif-collector: WARNING: listening on {host}, which other machines can reach. The page, /api and /_admin"
    " need the token, but travel unencrypted (no TLS): use it only on a network you trust."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moesif-collector", description="A local, Moesif-compatible ingestion server."
    )
    parser.add_argument("--version", action="version", version=f"moesif-collector {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the collector (API + web page)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=5080, help="port (default 5080; 0 picks a free port)")
    serve.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file (default ./{DEFAULT_DB}; :memory: works)")
    serve.add_argument("--config-file", help="app config JSON (default: beside the db, NAME.config.json)")
    serve.add_argument("--rules-file", help="governance rules JSON (default: beside the db, NAME.rules.json)")
    serve.add_argument(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        help="largest accepted body in bytes, on the wire and decompressed (default 50 MiB)",
    )
    serve.add_argument(
        "--max-inflight",
        type=int,
        default=DEFAULT_MAX_INFLIGHT,
        help="body bytes (raw plus decompressed) all requests may hold at once; more waits, then gets 503"
        " (default 100 MiB)",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer the page, /api and /_admin under this Host name (repeatable; '*' for any);"
        " loopback names and the bound address always work",
    )
    serve.add_argument(
        "--token",
        default=os.environ.get("MOESIF_COLLECTOR_TOKEN") or None,
        help="require this secret for the page, /api and /_admin (open /?token=... once, or send"
        " Authorization: Bearer ...); default: $MOESIF_COLLECTOR_TOKEN, else none. /v1 never needs it",
    )
    serve.add_argument("--refresh-ms", type=int, default=1000, help="web page polling interval (default 1000)")
    serve.add_argument("--verbose", action="store_true", help="log every request on stderr")

    def add_filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--path", default="", help="only calls whose path contains this")
        p.add_argument("--status", default="", choices=("", *STATUS_CLASSES), help="only this status class")
        p.add_argument("--user", default="", help="only calls whose user id contains this")

    tail = sub.add_parser("tail", help="print calls as they arrive, one line each")
    source = tail.add_mutually_exclusive_group()
    source.add_argument("--db", help=f"read this SQLite file (default ./{DEFAULT_DB})")
    source.add_argument("--url", help="read from a running collector, e.g. http://127.0.0.1:5080")
    tail.add_argument("--token", default=os.environ.get("MOESIF_COLLECTOR_TOKEN"), help="the collector's --token")
    tail.add_argument("-n", "--lines", type=int, default=10, help="recent calls to print first (default 10)")
    tail.add_argument("--interval", type=float, default=0.5, help="seconds between polls (default 0.5)")
    tail.add_argument("--no-follow", action="store_true", help="print the recent calls and exit")
    tail.add_argument("--count", type=int, help="exit after printing this many lines in all")
    tail.add_argument("--timeout", type=float, help="exit after following for this many seconds")
    add_filters(tail)

    stats = sub.add_parser("stats", help="print totals: calls, calls/min, error rate, p50, p95, per route")
    source = stats.add_mutually_exclusive_group()
    source.add_argument("--db", help=f"read this SQLite file (default ./{DEFAULT_DB})")
    source.add_argument("--url", help="read from a running collector")
    stats.add_argument("--token", default=os.environ.get("MOESIF_COLLECTOR_TOKEN"), help="the collector's --token")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_filters(stats)

    sample = sub.add_parser("send-sample", help="post realistic sample events to a collector (demo traffic)")
    sample.add_argument("--url", required=True, help="collector base URL, e.g. http://127.0.0.1:5080")
    sample.add_argument("--count", type=int, default=50, help="number of events (default 50)")
    sample.add_argument("--batch-size", type=int, default=10, help="events per batch (default 10)")
    sample.add_argument("--app-id", default="sample-app", help="X-Moesif-Application-Id to send")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``moesif-collector`` and ``python -m moesif_collector``."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "tail":
            return _tail(args)
        if args.command == "stats":
            return _stats(args)
        if args.command == "send-sample":
            return _send_sample(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except _CliError as exc:
        print(f"moesif-collector: {printable(str(exc))}", file=sys.stderr)
        return 2
    raise AssertionError(f"unknown command {args.command}")


class _CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def _serve(args: argparse.Namespace) -> int:
    try:
        collector = Collector(
            host=args.host,
            port=args.port,
            db_path=args.db,
            config_file=args.config_file,
            rules_file=args.rules_file,
            max_body=args.max_body,
            refresh_ms=args.refresh_ms,
            verbose=args.verbose,
            max_inflight=args.max_inflight,
            allowed_hosts=args.allow_host,
            token=args.token,
        ).start()
    except OSError as exc:
        raise _CliError(f"cannot start: {exc}") from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"moesif-collector listening on {collector.url}", flush=True)
    print(f"  web page: {collector.url}/{'?token=' + quote(args.token) if args.token else ''}", flush=True)
    print(f"  database: {os.path.abspath(args.db) if args.db != ':memory:' else ':memory:'}", flush=True)
    print(f"  config:   {collector.config_file.resolve()}", flush=True)
    print(f"  rules:    {collector.rules_file.resolve()}", flush=True)
    if not collector.app.hosts.loopback_only:
        warning = NOT_LOOPBACK_WARNING if not args.token else NOT_LOOPBACK_WITH_TOKEN
        print(warning.format(host=args.host), file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        collector.stop()
        print("moesif-collector stopped", file=sys.stderr, flush=True)
    return 0


def _filter(args: argparse.Namespace, after_id: int = 0) -> CallFilter:
    return CallFilter(path=args.path, status=args.status, user=args.user, after_id=after_id)


def _open_db(path: str | None) -> Storage:
    db = path or DEFAULT_DB
    if db == ":memory:" or not os.path.exists(db):
        raise _CliError(f"no database at {db} (give --db PATH, or --url of a running collector)")
    return Storage(db)


def _get_json(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _CliError(f"cannot read {url}: {exc}") from None


def _calls_source(
    args: argparse.Namespace,
) -> tuple[Callable[[CallFilter, int, bool], list[dict[str, Any]]], Callable[[], None]]:
    """A function returning calls (filter, limit, newest_first) from --url or --db, and a closer."""
    if args.url:
        base = args.url.rstrip("/")

        def from_url(flt: CallFilter, limit: int, newest_first: bool) -> list[dict[str, Any]]:
            query = {
                "path": flt.path,
                "status": flt.status,
                "user": flt.user,
                "limit": str(limit),
                "after_id": str(flt.after_id) if flt.after_id else "",
                "order": "desc" if newest_first else "asc",
            }
            data = _get_json(f"{base}/api/calls?{urlencode({k: v for k, v in query.items() if v})}", args.token)
            calls: list[dict[str, Any]] = data["calls"]
            return calls

        return from_url, lambda: None
    storage = _open_db(args.db)

    def from_db(flt: CallFilter, limit: int, newest_first: bool) -> list[dict[str, Any]]:
        return storage.calls(flt, limit=limit, newest_first=newest_first)

    return from_db, storage.close


def _follow(
    fetch: Callable[[CallFilter, int, bool], list[dict[str, Any]]], args: argparse.Namespace
) -> Iterator[dict[str, Any]]:
    recent = fetch(_filter(args), max(args.lines, 1), True)
    last_id = max((int(c["id"]) for c in recent), default=0)
    yield from reversed(recent[: max(args.lines, 0)])
    if args.no_follow:
        return
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    while deadline is None or time.monotonic() < deadline:
        new = fetch(_filter(args, after_id=last_id), 500, False)
        for call in new:
            last_id = max(last_id, int(call["id"]))
            yield call
        if len(new) < 500:
            time.sleep(args.interval)


def _tail(args: argparse.Namespace) -> int:
    fetch, close = _calls_source(args)
    printed = 0
    try:
        for call in _follow(fetch, args):
            print(call_line(call), flush=True)
            printed += 1
            if args.count is not None and printed >= args.count:
                break
    finally:
        close()
    return 0


def _stats(args: argparse.Namespace) -> int:
    if args.url:
        flt = _filter(args)
        query = urlencode({k: v for k, v in {"path": flt.path, "status": flt.status, "user": flt.user}.items() if v})
        data = _get_json(f"{args.url.rstrip('/')}/api/stats" + (f"?{query}" if query else ""), args.token)
    else:
        storage = _open_db(args.db)
        try:
            data = storage.stats(_filter(args))
        finally:
            storage.close()
    # json.dumps escapes C0 and C1; DEL is plain ASCII to it, so it is escaped here (the rule of text.py)
    print(json.dumps(data, indent=2).replace("\x7f", "\\u007f") if args.json else stats_table(data), flush=True)
    return 0


def _send_sample(args: argparse.Namespace) -> int:
    batches, rest = divmod(args.count, args.batch_size)
    sent = send_batches(args.url, batches, args.batch_size, seed=int(time.time()), app_id=args.app_id)
    if rest:
        sent += send_batches(args.url, 1, rest, seed=int(time.time()) + 1, app_id=args.app_id)
    print(f"sent {sent} of {args.count} events to {args.url}", flush=True)
    return 0 if sent == args.count else 1
