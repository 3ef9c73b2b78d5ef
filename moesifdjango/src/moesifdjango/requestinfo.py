"""What the middleware reads from a Django request: URL, headers, request body, user and session.

Everything here copies raw parts only; naming headers, parsing bodies, decoding tokens and finding the client IP
happen later in the core's worker.
"""

from __future__ import annotations

import logging
import string
from typing import Any, Dict, Optional, Tuple

from django.conf import settings as django_settings
from django.http import HttpRequest
from django.utils.functional import LazyObject, empty

from moesif_core import BodyTap, TeeStream, content_length

logger = logging.getLogger("moesif")


#: What Django's ``escape_uri_path`` (the path) and ``iri_to_uri`` (the query string) leave as they are:
#: ``urllib.parse.quote``'s always-safe characters plus each one's ``safe`` argument (the same in every Django since
#: 1.9). A path or query made only of these comes out of ``get_full_path()`` unchanged.
_ALWAYS_SAFE = string.ascii_letters + string.digits + "_.-~"
_PATH_SAFE = _ALWAYS_SAFE + "/:@&+$,!*'()"
_QUERY_SAFE = _ALWAYS_SAFE + "/#%[]=:;$&()+,!?*@'"

#: ``django.conf.settings``' own ``__dict__``, where it caches each setting on first read (and which it empties when
#: ``override_settings`` swaps the settings): a plain ``dict.get`` here instead of a trip through ``LazyObject``
#: (~1 us a setting). A setting not cached there is read the usual way, which caches it.
_SETTINGS_CACHE: Dict[str, Any] = object.__getattribute__(django_settings, "__dict__")
_MISSING = object()

#: Request classes whose ``scheme``, ``_get_raw_host`` and ``get_full_path`` are Django's own (almost every one): for
#: those :func:`request_uri` may take its short way.
_PLAIN_REQUESTS: Dict[type, bool] = {}


def _setting(name: str) -> Any:
    value = _SETTINGS_CACHE.get(name, _MISSING)
    return getattr(django_settings, name) if value is _MISSING else value


def _plain_request(cls: type) -> bool:
    plain = _PLAIN_REQUESTS[cls] = (
        getattr(cls, "scheme", None) is HttpRequest.scheme
        and getattr(cls, "_get_raw_host", None) is getattr(HttpRequest, "_get_raw_host", _MISSING)
        and getattr(cls, "get_full_path", None) is HttpRequest.get_full_path
        and callable(getattr(cls, "_get_scheme", None))
    )
    return plain


def request_uri(request: HttpRequest) -> str:
    """Scheme, host, path and query string as the client asked for them.

    The host is Django's raw host (``X-Forwarded-Host`` under ``USE_X_FORWARDED_HOST``, else ``Host``, else the
    server name and port): what ``get_host()`` returns, without re-validating it against ``ALLOWED_HOSTS`` on every
    request (Django already did, and a refused host is recorded as sent).

    The common case costs a few dict reads instead of ~6 us: no ``SECURE_PROXY_SSL_HEADER``, the ``Host`` header
    is the host, and a path and query that Django's quoting leaves unchanged; it then gives exactly what
    ``request.scheme``, ``_get_raw_host()`` and ``get_full_path()`` give (``tests/djangoapp`` compares the two ways).
    Any other request goes the long way, through Django's own methods. (The helpers are written out here: this runs
    on every request.)
    """
    cls = type(request)
    plain = _PLAIN_REQUESTS.get(cls)
    if plain is None:
        plain = _plain_request(cls)
    proxy_ssl = _SETTINGS_CACHE.get("SECURE_PROXY_SSL_HEADER", _MISSING)
    if proxy_ssl is _MISSING:
        proxy_ssl = _setting("SECURE_PROXY_SSL_HEADER")
    if plain and not proxy_ssl:
        meta = request.META
        host = meta.get("HTTP_HOST")
        query = meta.get("QUERY_STRING", "")
        path = request.path
        if (
            host is not None
            and type(query) is str
            and type(path) is str
            and not path.rstrip(_PATH_SAFE)
            and not query.rstrip(_QUERY_SAFE)
            and ("HTTP_X_FORWARDED_HOST" not in meta or not _setting("USE_X_FORWARDED_HOST"))
        ):
            scheme = request._get_scheme()  # type: ignore[attr-defined]  # what ``request.scheme`` returns here
            return f"{scheme}://{host}{path}?{query}" if query else f"{scheme}://{host}{path}"
    return _request_uri(request)


def _request_uri(request: HttpRequest) -> str:
    """:func:`request_uri` the long way: Django's own methods."""
    meta = request.META
    try:
        host = getattr(request, "_get_raw_host")()  # noqa: B009 - private (Django >= 1.9), untyped in the stubs
    except Exception:  # noqa: BLE001 - an old or unusual request class: fall back to the headers
        host = str(meta.get("HTTP_HOST") or meta.get("SERVER_NAME") or "")
    return f"{request.scheme}://{host}{request.get_full_path()}"


def capture_request_body(request: HttpRequest, limit: int) -> Tuple[Optional[BodyTap], Optional[int]]:
    """The request body tap, and the declared size when the body is left for the app to read.

    - Already read by someone (``request.body`` cached): that.
    - Declared size within ``limit`` (``MAX_BODY_SIZE``) and within Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``: read
      ``request.body`` now. That is what Django itself does on first access; it caches the bytes and serves
      ``request.POST``, ``request.FILES`` and ``request.read()`` from them, so the view sees the same request.
    - Larger, or of unknown size (chunked): not read. ``request._stream`` is wrapped so the first ``limit`` bytes
      the app reads are kept as they pass; a multipart upload still streams to Django's upload handlers (and to
      disk) without us holding more than ``limit`` bytes of it.
    """
    d = request.__dict__
    body = d.get("_body")
    if body is not None:
        tap = BodyTap(limit)
        tap.feed(body)
        return tap, None
    meta = request.META
    n = content_length(meta.get("CONTENT_LENGTH"))
    if n == 0 or (n is None and not meta.get("HTTP_TRANSFER_ENCODING")):
        return None, None
    if d.get("_read_started") or "_stream" not in d:
        return None, None
    if n is not None and n <= limit:
        max_memory = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if max_memory is None or n <= max_memory:
            try:
                body = request.body
            except Exception:
                logger.debug("moesif: could not read the request body", exc_info=True)
                return None, None
            tap = BodyTap(limit)
            tap.feed(body)
            return tap, None
    tap = BodyTap(limit)
    setattr(request, "_stream", TeeStream(d["_stream"], tap))  # noqa: B010 - a private slot: no typed access
    return tap, n


def seal_request_body(tap: Optional[BodyTap], declared: Optional[int]) -> None:
    """A body left to the app: count the bytes it did not read, so the event says the body was cut
    (``metadata.moesif_body_truncated.request`` = the declared size) instead of looking whole or empty."""
    if tap is not None and declared is not None and tap.total < declared:
        tap.total = declared


def loaded_user(request: HttpRequest, may_load: bool) -> Any:
    """``request.user`` if the app already resolved it; with ``may_load``, resolve it now."""
    d = request.__dict__
    user = d.get("user")
    if isinstance(user, LazyObject):
        wrapped = getattr(user, "_wrapped", empty)
        if wrapped is not empty:
            return wrapped
        cached = d.get("_acached_user")  # Django 5's ``await request.auser()``
        if cached is not None:
            return cached
        if not may_load:
            return None
        user.is_authenticated  # noqa: B018 - resolves the lazy user (session + one query), cached by Django
        return getattr(user, "_wrapped", None)
    if user is None:
        return d.get("_acached_user")
    return user


def user_id_from_request(request: HttpRequest, may_load: bool) -> Optional[str]:
    """The logged-in user's ``get_username()`` (the ``USERNAME_FIELD``, ``username`` for Django's own ``User``, as
    the original's ``request.user.username``); ``None`` for anonymous users or no auth middleware."""
    user = loaded_user(request, may_load)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    get_username = getattr(user, "get_username", None)
    name = get_username() if callable(get_username) else getattr(user, "username", None)
    if name is None or name == "":
        return None
    return str(name)


def session_key(request: HttpRequest) -> Optional[str]:
    """The session key from ``SessionMiddleware`` (no database access)."""
    session = request.__dict__.get("session")
    if session is None:
        return None
    key = getattr(session, "session_key", None)
    return key if isinstance(key, str) and key else None
