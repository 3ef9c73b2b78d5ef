"""Writes the generated sections of the READMEs, so each has one source of truth.

- The settings table of each package README: keys, types and defaults come from :mod:`moesif_core.settings` (and
  each adapter's own defaults), what each key does and each callback's signature from the tables below.
- "Migrating from the original": the shared list in ``docs/migrating.md``, copied into every package README and the
  top-level one (what differs in one package only is written by hand in that README, outside the markers).

Run ``python tools/readme_sections.py`` after changing a setting or ``docs/migrating.md``; ``--check`` exits 1 when a
README is out of date (``tests/packaging/test_readmes.py`` runs the same comparison).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from moesif_core import settings as core_settings

ROOT = Path(__file__).resolve().parents[1]
MIGRATING = ROOT / "docs" / "migrating.md"

#: What each key does (aliases are listed with their canonical key).
DOCS: Dict[str, str] = {
    "APPLICATION_ID": "Your Moesif Collector Application Id (any non-empty string for a local collector).",
    "BASE_URI": "Where events and profiles are sent: the Moesif API, a secure proxy, or a compatible collector.",
    "DEBUG": "Debug output on the `moesif` logger (never bodies, never the application id).",
    "LOG_BODY": "Capture request and response bodies.",
    "MAX_BODY_SIZE": "Bytes of each body captured; a longer body is sent truncated, as base64, and marked in "
    "`metadata`.",
    "EVENT_QUEUE_SIZE": "Events the queue holds; when it is full, new events are dropped and counted.",
    "EVENT_QUEUE_MAX_BYTES": "Bytes the queue holds (bodies plus 1 KiB per event); the same rule when full.",
    "BATCH_SIZE": "Events per batch sent to the collector.",
    "EVENT_BATCH_TIMEOUT": "Longest wait before a batch that is not full is sent.",
    "EVENT_WORKER_COUNT": "Background threads sending batches.",
    "EXIT_FLUSH_TIMEOUT": "Longest the flush at interpreter exit may take.",
    "REQUEST_TIMEOUT": "Read timeout of each call to the collector (connect: 3 s).",
    "SPOOL_DIR": "A directory (local filesystem) where batches the collector cannot take are kept on disk once it "
    "has been down 5 s or memory is half full, and sent from later, also by a new process after a restart or a "
    "crash; shared safely by the processes that use it; not set: memory only.",
    "SPOOL_MAX_BYTES": "Bytes the spool directory may hold; past it the oldest batches are dropped and counted.",
    "AUTHORIZATION_HEADER_NAME": "Request header(s) the user id is read from when `IDENTIFY_USER` gives none; "
    'comma-separated, tried in order (`"X-Api-Key,Authorization"`).',
    "AUTHORIZATION_USER_ID_FIELD": "The JWT claim that holds the user id.",
    "API_VERSION": "The API version recorded with every event.",
    "GET_API_VERSION": "The API version of this call.",
    "DISABLED_TRANSACTION_ID": "Do not add the `X-Moesif-Transaction-Id` response header.",
    "IDENTIFY_USER": "The user id of this call.",
    "IDENTIFY_COMPANY": "The company id of this call.",
    "GET_SESSION_TOKEN": "The session token of this call.",
    "GET_METADATA": "Custom metadata (JSON-serialisable) for this call.",
    "SKIP": "`True` to send no event for this call.",
    "MASK_EVENT_MODEL": "Change or strip the final event before it is sent (in the background worker).",
    "REQUEST_HEADER_MASKS": "Request headers removed from the event (any case).",
    "REQUEST_BODY_MASKS": "Request body keys removed from the event (any case, any depth).",
    "RESPONSE_HEADER_MASKS": "Response headers removed from the event (any case).",
    "RESPONSE_BODY_MASKS": "Response body keys removed from the event (any case, any depth).",
    "CAPTURE_OUTGOING_REQUESTS": "Also capture the calls this process makes with `requests` (and `httpx`), "
    "through `moesifpythonrequest`, into the same queue.",
    "GET_METADATA_OUTGOING": "Custom metadata for an outgoing call.",
    "SKIP_OUTGOING": "`True` to send no event for an outgoing call.",
    "IDENTIFY_USER_OUTGOING": "The user id of an outgoing call.",
    "IDENTIFY_COMPANY_OUTGOING": "The company id of an outgoing call.",
    "GET_SESSION_TOKEN_OUTGOING": "The session token of an outgoing call.",
    "LOG_BODY_OUTGOING": "Capture the bodies of outgoing calls.",
}

#: What each callback returns.
RETURNS: Dict[str, str] = {
    "IDENTIFY_USER": "str",
    "IDENTIFY_COMPANY": "str",
    "GET_SESSION_TOKEN": "str",
    "GET_METADATA": "dict",
    "SKIP": "bool",
    "GET_API_VERSION": "str",
    "MASK_EVENT_MODEL": "event",
    "GET_METADATA_OUTGOING": "dict",
    "SKIP_OUTGOING": "bool",
    "IDENTIFY_USER_OUTGOING": "str",
    "IDENTIFY_COMPANY_OUTGOING": "str",
    "GET_SESSION_TOKEN_OUTGOING": "str",
}

INCOMING_CALLBACKS = (
    "IDENTIFY_USER",
    "IDENTIFY_COMPANY",
    "GET_SESSION_TOKEN",
    "GET_METADATA",
    "SKIP",
    "GET_API_VERSION",
)
OUTGOING_KEYS = (
    "CAPTURE_OUTGOING_REQUESTS",
    "GET_METADATA_OUTGOING",
    "SKIP_OUTGOING",
    "IDENTIFY_USER_OUTGOING",
    "IDENTIFY_COMPANY_OUTGOING",
    "GET_SESSION_TOKEN_OUTGOING",
    "LOG_BODY_OUTGOING",
)
#: Keys about the incoming call, which capturing outgoing calls on its own does not read.
INCOMING_ONLY = (
    *INCOMING_CALLBACKS,
    "LOG_BODY",
    "API_VERSION",
    "DISABLED_TRANSACTION_ID",
    "AUTHORIZATION_HEADER_NAME",
    "AUTHORIZATION_USER_ID_FIELD",
    "CAPTURE_OUTGOING_REQUESTS",
)

OUTGOING_ARGS = "(req, res)"


@dataclasses.dataclass(frozen=True)
class Package:
    """How one README documents the settings: whose defaults, which callback arguments, which keys."""

    defaults: Optional[Tuple[str, str]]  # (module, attribute) of the adapter's defaults over the core's
    incoming_args: Dict[str, str]  # callback key -> its arguments; "*" for every incoming callback
    leave_out: Tuple[str, ...] = ()
    note: str = ""


PACKAGES: Dict[str, Package] = {
    "moesifwsgi": Package(
        ("moesifwsgi.options", "WSGI_DEFAULTS"),
        {
            "*": "(app, environ)",
            "IDENTIFY_USER": "(app, environ, response_headers=dict())",
            "IDENTIFY_COMPANY": "(app, environ, response_headers=dict())",
        },
        note='`app` is the wrapped WSGI app, `environ` the request\'s WSGI environ (see "What the callbacks see"). '
        "`IDENTIFY_USER` and `IDENTIFY_COMPANY` may also take just `(app, environ)`. The outgoing callbacks get the "
        "`requests` (or `httpx`) request and response.",
    ),
    "moesifasgi": Package(
        ("moesifasgi.options", "DEFAULTS"),
        {"*": "(request, response)"},
        note="`request` is a Starlette `Request`, `response` a `moesifasgi.CallbackResponse`; every callback, "
        "`MASK_EVENT_MODEL` included, may be `async def`. The outgoing callbacks get the `requests` (or `httpx`) "
        "request and response.",
    ),
    "moesifdjango": Package(
        ("moesifdjango.config", "DJANGO_DEFAULTS"),
        {"*": "(req, res)"},
        note="`req` and `res` are Django's `HttpRequest` and `HttpResponse`; the outgoing callbacks get the "
        "`requests` (or `httpx`) request and response. The settings live in `MOESIF_MIDDLEWARE` in your Django "
        "settings.",
    ),
    "moesiftornado": Package(
        ("moesiftornado.middleware", "TORNADO_DEFAULTS"),
        {"*": "(handler)"},
        leave_out=OUTGOING_KEYS,
        note="`handler` is the `tornado.web.RequestHandler` that served the call. Outgoing calls: start "
        "`moesifpythonrequest` yourself (`StartCapture().start_capture_outgoing(settings)`); like the original, "
        "moesiftornado does not read `CAPTURE_OUTGOING_REQUESTS`.",
    ),
    "moesif_aiohttp": Package(
        ("moesif_aiohttp.middleware", "DEFAULTS"),
        {"*": "(request, response)"},
        note="`request` is aiohttp's `web.Request`, `response` the `web.StreamResponse` the handler returned or "
        "raised (a bare 500 `web.Response` when it raised another exception; `None` when `IDENTIFY_USER` and "
        "`IDENTIFY_COMPANY` are called before the handler for governance rules). A callback may return an "
        "awaitable. The outgoing callbacks get the `requests` (or `httpx`, or `aiohttp`) request and response.",
    ),
    "moesifpythonrequest": Package(
        None,
        {},
        leave_out=INCOMING_ONLY,
        note="The options are the dict given to `StartCapture().start_capture_outgoing(options)` (or a "
        "middleware's settings, with `CAPTURE_OUTGOING_REQUESTS: True`). `req` and `res` are the `requests` "
        "`PreparedRequest` and `Response` (or the `httpx` `Request` and `Response`, or aiohttp's `RequestInfo` and "
        "`ClientResponse`).",
    ),
    "moesif_core": Package(
        None,
        {"*": "(request, response)"},
        note="The core is configured through an adapter: the arguments of the callbacks are the adapter's own "
        "objects (see its README); the outgoing callbacks get the `requests` (or `httpx`) request and response.",
    ),
}

TYPES = {
    "True or False": "bool",
    "an integer": "int",
    "a number of seconds": "seconds",
    "a string": "str",
    "a function": "function",
    "a list of strings": "list of str",
    "a directory path (a string or a pathlib.Path)": "str or Path",
}

SETTINGS_BEGIN = "<!-- BEGIN settings: generated by tools/readme_sections.py from moesif_core.settings -->"
SETTINGS_END = "<!-- END settings -->"
MIGRATING_BEGIN = "<!-- BEGIN migrating: generated by tools/readme_sections.py from docs/migrating.md -->"
MIGRATING_END = "<!-- END migrating -->"


def canonical_keys() -> List[str]:
    """Every settings key but the aliases, in the order the core defines them."""
    aliases = core_settings._ALIASES  # alias -> canonical
    return [k for k in core_settings._SPEC if k not in aliases]


def aliases_of(key: str) -> List[str]:
    return [alias for alias, canonical in core_settings._ALIASES.items() if canonical == key]


def core_defaults() -> Dict[str, Any]:
    return {
        f.name: f.default for f in dataclasses.fields(core_settings.Settings) if f.default is not dataclasses.MISSING
    }


def fmt_default(key: str, value: Any, kind: str) -> str:
    if key == "APPLICATION_ID":
        return "required"
    if value is None or kind == "function":
        return "not set"
    if isinstance(value, bool):
        return f"`{value}`"
    if isinstance(value, (tuple, list)):
        return "`[]`" if not value else f"`{list(value)!r}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if kind == "seconds":
        return f"{value:g} s"
    if isinstance(value, int) and value >= 1024 * 1024 and value % (1024 * 1024) == 0:
        mib = value // (1024 * 1024)
        return f"`{value}` ({mib // 1024} GiB)" if mib % 1024 == 0 else f"`{value}` ({mib} MiB)"
    return f"`{value}`"


def settings_table(package: str) -> str:
    spec = PACKAGES[package]
    defaults = core_defaults()
    overrides: Mapping[str, Any] = {}
    if spec.defaults is not None:
        overrides = getattr(importlib.import_module(spec.defaults[0]), spec.defaults[1])
    rows = ["| key | type | default | what it does |", "|---|---|---|---|"]
    for key in canonical_keys():
        if key in spec.leave_out:
            continue
        attr, (_, expected) = core_settings._SPEC[key]
        kind = TYPES[expected]
        if kind == "function":
            if key == "MASK_EVENT_MODEL":
                args = "(event_model)"
            elif key in OUTGOING_KEYS:
                args = OUTGOING_ARGS
            else:
                args = spec.incoming_args.get(key, spec.incoming_args["*"])
            kind = f"function `{args}` → {RETURNS[key]}"
        value = overrides.get(key, defaults.get(attr))
        names = " ".join(f"`{k}`" for k in [key, *aliases_of(key)])
        rows.append(f"| {names} | {kind} | {fmt_default(key, value, kind)} | {DOCS[key]} |")
    return "\n".join([*rows, "", spec.note]) if spec.note else "\n".join(rows)


def migrating_list() -> str:
    text = MIGRATING.read_text()
    return text[text.index("\n- ") + 1 :].rstrip("\n")


def replace_between(text: str, begin: str, end: str, body: str, where: Path) -> str:
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{where}: add the lines {begin!r} and {end!r} where the section goes")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text, count=1)


def readme_paths() -> Dict[str, Path]:
    """README -> the package whose settings it documents ("" for the top-level README: migrating only)."""
    paths = {package: ROOT / package / "README.md" for package in PACKAGES}
    paths[""] = ROOT / "README.md"
    return paths


def render(package: str, text: str, where: Path) -> str:
    if package:
        text = replace_between(text, SETTINGS_BEGIN, SETTINGS_END, settings_table(package), where)
    return replace_between(text, MIGRATING_BEGIN, MIGRATING_END, migrating_list(), where)


def main(argv: List[str]) -> int:
    stale = []
    for package, path in readme_paths().items():
        current = path.read_text()
        wanted = render(package, current, path)
        if wanted != current:
            stale.append(path.relative_to(ROOT))
            if "--check" not in argv:
                path.write_text(wanted)
    if stale and "--check" in argv:
        print(f"out of date: {', '.join(map(str, stale))}; run: python tools/readme_sections.py")
        return 1
    for path in stale:
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
