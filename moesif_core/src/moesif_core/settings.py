"""The user's settings dict, validated once into one typed object.

The originals read their settings with ``dict.get`` wherever they needed them, so a misspelt key or a wrong type
was silently ignored. We validate at construction: a wrong setting fails once, at start-up, with a message that
names the key, says what was expected and offers a did-you-mean. Keys that some original accepted (in any
package, under any spelling) are accepted here in every package.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, Optional, Tuple
from urllib.parse import urlsplit

DEFAULT_BASE_URI = "https://api.moesif.net"

#: Default cap, in bytes, on each captured body (request and response separately).
DEFAULT_MAX_BODY_SIZE = 1024 * 1024
#: Default bound on the bytes held by the event queue (an estimate: bodies plus a fixed per-event overhead).
DEFAULT_EVENT_QUEUE_MAX_BYTES = 64 * 1024 * 1024
#: Default bound on the bytes the durable spool (``SPOOL_DIR``) keeps on disk.
DEFAULT_SPOOL_MAX_BYTES = 1024 * 1024 * 1024

logger = logging.getLogger("moesif")

Callback = Callable[..., Any]


_BOOL = ((bool, int), "True or False")
_INT = ((int,), "an integer")
_NUMBER = ((int, float), "a number of seconds")
_STR = ((str,), "a string")
_CALLABLE = ((), "a function")
_STR_LIST = ((list, tuple, set, frozenset), "a list of strings")
_PATH = ((str, os.PathLike), "a directory path (a string or a pathlib.Path)")

# key -> (attribute, kinds, expected). Aliases point at the same attribute.
_SPEC: dict[str, tuple[str, tuple[tuple[type, ...], str]]] = {
    "APPLICATION_ID": ("application_id", _STR),
    "BASE_URI": ("base_uri", _STR),
    "LOCAL_MOESIF_BASEURL": ("base_uri", _STR),
    "DEBUG": ("debug", _BOOL),
    "LOCAL_DEBUG": ("debug", _BOOL),
    "LOG_BODY": ("log_body", _BOOL),
    "MAX_BODY_SIZE": ("max_body_size", _INT),
    "EVENT_QUEUE_SIZE": ("event_queue_size", _INT),
    "EVENT_QUEUE_MAX_BYTES": ("event_queue_max_bytes", _INT),
    "BATCH_SIZE": ("batch_size", _INT),
    "EVENT_BATCH_TIMEOUT": ("event_batch_timeout", _NUMBER),
    "EVENT_WORKER_COUNT": ("event_worker_count", _INT),
    "EXIT_FLUSH_TIMEOUT": ("exit_flush_timeout", _NUMBER),
    "REQUEST_TIMEOUT": ("request_timeout", _NUMBER),
    "SPOOL_DIR": ("spool_dir", _PATH),
    "SPOOL_MAX_BYTES": ("spool_max_bytes", _INT),
    "AUTHORIZATION_HEADER_NAME": ("authorization_header_name", _STR),
    "AUTHORIZATION_USER_ID_FIELD": ("authorization_user_id_field", _STR),
    "API_VERSION": ("api_version", _STR),
    "GET_API_VERSION": ("get_api_version", _CALLABLE),
    "DISABLED_TRANSACTION_ID": ("disable_transaction_id", _BOOL),
    "DISABLE_TRANSACTION_ID": ("disable_transaction_id", _BOOL),
    "IDENTIFY_USER": ("identify_user", _CALLABLE),
    "IDENTIFY_COMPANY": ("identify_company", _CALLABLE),
    "GET_SESSION_TOKEN": ("get_session_token", _CALLABLE),
    "GET_METADATA": ("get_metadata", _CALLABLE),
    "SKIP": ("skip", _CALLABLE),
    "MASK_EVENT_MODEL": ("mask_event_model", _CALLABLE),
    "REQUEST_HEADER_MASKS": ("request_header_masks", _STR_LIST),
    "REQUEST_BODY_MASKS": ("request_body_masks", _STR_LIST),
    "RESPONSE_HEADER_MASKS": ("response_header_masks", _STR_LIST),
    "RESPONSE_BODY_MASKS": ("response_body_masks", _STR_LIST),
    "CAPTURE_OUTGOING_REQUESTS": ("capture_outgoing_requests", _BOOL),
    "GET_METADATA_OUTGOING": ("get_metadata_outgoing", _CALLABLE),
    "SKIP_OUTGOING": ("skip_outgoing", _CALLABLE),
    "IDENTIFY_USER_OUTGOING": ("identify_user_outgoing", _CALLABLE),
    "IDENTIFY_COMPANY_OUTGOING": ("identify_company_outgoing", _CALLABLE),
    "GET_SESSION_TOKEN_OUTGOING": ("get_session_token_outgoing", _CALLABLE),
    "LOG_BODY_OUTGOING": ("log_body_outgoing", _BOOL),
}

#: Older or per-package spellings; the canonical key (the value) wins when both are given.
_ALIASES = {
    "LOCAL_MOESIF_BASEURL": "BASE_URI",
    "LOCAL_DEBUG": "DEBUG",
    "DISABLE_TRANSACTION_ID": "DISABLED_TRANSACTION_ID",
}
#: Flags that are on when any of their spellings is on.
_FLAG_ALIASES = {"DEBUG", "LOCAL_DEBUG", "DISABLED_TRANSACTION_ID", "DISABLE_TRANSACTION_ID"}

# Keys some original accepted but that have no effect here; they are warned about, never fatal.
ACCEPTED_IGNORED_KEYS = frozenset(
    {
        "USE_MOESIF_PROXY",
        "LOCAL_DEBUG_TRACE",
        "CAPTURE_OUTGOING_REQUESTS_INTERVAL",
        "AUTHORIZATION_HEADER_NAME_OUTGOING",
    }
)


@dataclass
class Settings:
    """Validated middleware settings. Build with :meth:`Settings.from_mapping`; attributes are read-only by
    convention (the worker reads them from another thread)."""

    application_id: str
    base_uri: str = DEFAULT_BASE_URI
    debug: bool = False
    log_body: bool = True
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    event_queue_size: int = 1_000_000
    event_queue_max_bytes: int = DEFAULT_EVENT_QUEUE_MAX_BYTES
    batch_size: int = 100
    event_batch_timeout: float = 1.0
    event_worker_count: int = 2
    exit_flush_timeout: float = 5.0
    request_timeout: float = 10.0
    #: Where batches the collector could not take are kept on disk (absolute); ``None``: memory only.
    spool_dir: Optional[str] = None
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    authorization_header_name: str = "authorization"
    authorization_user_id_field: str = "sub"
    api_version: Optional[str] = None
    get_api_version: Optional[Callback] = None
    disable_transaction_id: bool = False
    identify_user: Optional[Callback] = None
    identify_company: Optional[Callback] = None
    get_session_token: Optional[Callback] = None
    get_metadata: Optional[Callback] = None
    skip: Optional[Callback] = None
    mask_event_model: Optional[Callback] = None
    request_header_masks: Tuple[str, ...] = ()
    request_body_masks: Tuple[str, ...] = ()
    response_header_masks: Tuple[str, ...] = ()
    response_body_masks: Tuple[str, ...] = ()
    capture_outgoing_requests: bool = False
    get_metadata_outgoing: Optional[Callback] = None
    skip_outgoing: Optional[Callback] = None
    identify_user_outgoing: Optional[Callback] = None
    identify_company_outgoing: Optional[Callback] = None
    get_session_token_outgoing: Optional[Callback] = None
    log_body_outgoing: bool = True
    #: The user's dict as given, for adapters that pass it on (outgoing capture takes the same dict).
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_mapping(
        cls,
        settings: Optional[Mapping[str, Any]],
        *,
        where: str = "the Moesif settings",
        defaults: Optional[Mapping[str, Any]] = None,
    ) -> Settings:
        """Validate ``settings`` (the dict the user passed) and build the typed object.

        ``where`` names the place the user wrote the settings (``MOESIF_MIDDLEWARE`` in Django) so every message
        points at it. ``defaults`` lets an adapter keep its original's defaults (``BATCH_SIZE`` 25 in Django).
        Raises ``ValueError`` or ``TypeError`` naming the key.
        """
        if settings is None:
            settings = {}
        if not isinstance(settings, Mapping):
            raise TypeError(
                f"{where} must be a dict such as {{'APPLICATION_ID': 'your id'}}, got {type(settings).__name__}."
            )
        merged: dict[str, Any] = dict(defaults or {})
        merged.update(settings)
        values: dict[str, Any] = {}
        # aliases first, so the canonical spelling wins when both are given (``BASE_URI`` over
        # ``LOCAL_MOESIF_BASEURL``); for flags, either spelling set to True turns the flag on
        ordered = sorted(merged.items(), key=lambda kv: kv[0] not in _ALIASES)
        for key, value in ordered:
            if not isinstance(key, str):
                raise TypeError(f"{where}: setting names must be strings, got {key!r}.")
            spec = _SPEC.get(key)
            if spec is None:
                _unknown_key(key, where)
                continue
            attr, (kinds, expected) = spec
            if value is None or (attr in ("base_uri", "spool_dir") and value == ""):
                continue  # None (or an empty BASE_URI) means "not set", as with the originals' ``or`` chains
            checked = _check(key, value, kinds, expected, where)
            if kinds is _BOOL[0] and key in _FLAG_ALIASES and values.get(attr):
                continue  # DEBUG or LOCAL_DEBUG: either one on means on
            values[attr] = checked
        app_id = values.get("application_id")
        if not app_id or not str(app_id).strip():
            raise ValueError(
                f"{where}: APPLICATION_ID is missing or empty. Set 'APPLICATION_ID' to the Collector Application Id "
                "from your Moesif account (any non-empty string works with a local collector)."
            )
        _check_ranges(values, where)
        if "base_uri" in values:
            values["base_uri"] = values["base_uri"].rstrip("/")
        if "spool_dir" in values:  # taken relative to the working directory at start-up, not wherever it moves
            values["spool_dir"] = os.path.abspath(os.fsdecode(os.fspath(values["spool_dir"])))
        return cls(raw=dict(settings), **values)

    def describe(self) -> str:
        """A loggable summary that never contains the application id, nor credentials in ``BASE_URI``."""
        parts = []
        for f in fields(self):
            if f.name in ("application_id", "raw"):
                continue
            value = getattr(self, f.name)
            if callable(value):
                value = getattr(value, "__name__", "callable")
            elif f.name == "base_uri":
                value = redact_uri(value)
            parts.append(f"{f.name}={value!r}")
        return ", ".join(parts)


#: Keys whose values are secrets (or may carry one): a message about them never shows the value itself.
_SECRET_KEYS = frozenset({"APPLICATION_ID", "BASE_URI", "LOCAL_MOESIF_BASEURL"})


def redact_uri(uri: str) -> str:
    """``uri`` with any ``user:password@`` replaced by ``***@``, for logs and error messages."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<an unparseable URI>"
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def _shown(key: str, value: Any) -> str:
    """How a wrong value appears in an error message: its type and repr, but never a secret's content."""
    if key in _SECRET_KEYS and isinstance(value, str):
        return f"{type(value).__name__} {redact_uri(value) if key != 'APPLICATION_ID' else '(not shown)'!r}"
    if key in _SECRET_KEYS:
        size = f" of length {len(value)}" if hasattr(value, "__len__") else ""
        return f"{type(value).__name__}{size} (value not shown: it may be a secret)"
    return f"{type(value).__name__} {value!r}"


def _check(key: str, value: Any, kinds: Tuple[type, ...], expected: str, where: str) -> Any:
    if not kinds:  # a callback
        if not callable(value):
            raise TypeError(f"{where}: {key} must be {expected} (a callable), got {_shown(key, value)}.")
        return value
    if kinds == _STR_LIST[0]:
        if isinstance(value, str) or not isinstance(value, kinds):
            raise TypeError(
                f"{where}: {key} must be {expected}, e.g. ['password', 'token'], got {type(value).__name__}."
            )
        items = tuple(value)
        for item in items:
            if not isinstance(item, str):
                raise TypeError(f"{where}: {key} must be {expected}; {item!r} is not a string.")
        return items
    if bool in kinds:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        raise TypeError(f"{where}: {key} must be {expected}, got {_shown(key, value)}.")
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"{where}: {key} must be {expected}, got {_shown(key, value)}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {key} must be a finite number, got {value!r}.")
    return value


def _check_ranges(values: dict[str, Any], where: str) -> None:
    positive = {
        "batch_size": "BATCH_SIZE",
        "event_queue_size": "EVENT_QUEUE_SIZE",
        "event_worker_count": "EVENT_WORKER_COUNT",
        "event_queue_max_bytes": "EVENT_QUEUE_MAX_BYTES",
        "event_batch_timeout": "EVENT_BATCH_TIMEOUT",
        "request_timeout": "REQUEST_TIMEOUT",
        "spool_max_bytes": "SPOOL_MAX_BYTES",
    }
    for attr, key in positive.items():
        if attr in values and values[attr] <= 0:
            raise ValueError(f"{where}: {key} must be greater than 0, got {values[attr]!r}.")
    for attr, key in {"max_body_size": "MAX_BODY_SIZE", "exit_flush_timeout": "EXIT_FLUSH_TIMEOUT"}.items():
        if attr in values and values[attr] < 0:
            raise ValueError(f"{where}: {key} must be 0 or more, got {values[attr]!r}.")
    base = values.get("base_uri")
    if base is not None and (not base.startswith(("http://", "https://")) or not urlsplit(base).netloc):
        raise ValueError(
            f"{where}: BASE_URI must be an http:// or https:// URL such as 'https://api.moesif.net',"
            f" got {redact_uri(base)!r}."
        )


def _unknown_key(key: str, where: str) -> None:
    if key in ACCEPTED_IGNORED_KEYS:
        warnings.warn(f"{where}: {key} is accepted for compatibility but has no effect.", stacklevel=4)
        logger.warning("moesif: %s: %s is accepted for compatibility but has no effect.", where, key)
        return
    close = difflib.get_close_matches(key.upper(), list(_SPEC) + sorted(ACCEPTED_IGNORED_KEYS), n=1, cutoff=0.75)
    hint = f" Did you mean {close[0]!r}?" if close else f" Known settings: {', '.join(sorted(_SPEC))}."
    raise ValueError(f"{where}: unknown setting {key!r}.{hint}")
