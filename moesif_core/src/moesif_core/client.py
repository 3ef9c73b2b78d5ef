"""The ingestion API client: one pooled ``requests.Session`` per process, gzip, timeouts on every call.

:meth:`IngestionClient.send_events` is what the worker calls; it never raises and returns a :class:`SendResult`
that says whether to retry and when. The profile calls (``update_user`` and friends) are made from the user's
thread, validated before any network call, and raise :class:`MoesifAPIError` on failure.
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import requests
from requests.structures import CaseInsensitiveDict

from .jsoncodec import dumps
from .settings import DEFAULT_BASE_URI
from .version import __version__

logger = logging.getLogger("moesif")

CONFIG_ETAG_HEADER = "X-Moesif-Config-ETag"
#: Seconds to wait for a TCP connection to the collector.
CONNECT_TIMEOUT = 3.0
#: Statuses after which a batch is sent again (anything else in 4xx is the payload's fault and dropped).
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: gzip level of event batches (the spool stores them compressed the same way). 1: a third of level 5's CPU for a
#: batch (the worker runs on the app's cores); the bytes stay a few percent of the JSON, which repeats itself event
#: after event.
GZIP_LEVEL = 1


def gzip_batch(body: bytes) -> bytes:
    """``body`` as gzip at :data:`GZIP_LEVEL`, made in one zlib call (the header's time stamp 0: nothing reads it),
    where ``gzip.compress`` with a time stamp makes a second pass for the CRC: one pass and one GIL hand-over less
    per batch (no CPU difference could be measured in an app's process; it is also the simpler call)."""
    return zlib.compress(body, GZIP_LEVEL, wbits=31)


_default_base_uri: Optional[str] = None


def set_default_base_uri(base_uri: str) -> None:
    """Remember the ``BASE_URI`` the app configured its middleware with, for ``MoesifAPIClient`` (the originals
    shared one process-wide base URI between the middleware and the API client)."""
    global _default_base_uri
    _default_base_uri = base_uri


def default_base_uri() -> str:
    return _default_base_uri or DEFAULT_BASE_URI


class MoesifAPIError(Exception):
    """A profile call was refused by the ingestion API or could not reach it."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SendResult:
    ok: bool
    retryable: bool = False
    status: Optional[int] = None
    retry_after: Optional[float] = None
    config_etag: Optional[str] = None
    error: Optional[str] = None


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """``Retry-After`` as seconds: an integer, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import time

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _settle_environment(session: requests.Session, url: str) -> None:
    """Look up once what requests would look up in the environment on every call (the proxies for ``url`` from
    ``HTTP(S)_PROXY``/``NO_PROXY``, a ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, ``~/.netrc``) and stop it looking:
    on every call that walk over ``os.environ`` and the file system costs the worker more CPU than the gzip of a
    batch. The same settings apply; a change to the environment after the first call is not seen (a forked child
    looks again)."""
    merged = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies = merged["proxies"] or {}
    session.verify = merged["verify"]
    netrc_auth = requests.utils.get_netrc_auth(url)
    if netrc_auth:
        session.auth = netrc_auth
    session.trust_env = False


class IngestionClient:
    """HTTP to ``{BASE_URI}/v1/...``. Thread-safe; recreates its session in a forked child."""

    def __init__(
        self,
        application_id: str,
        base_uri: str = DEFAULT_BASE_URI,
        user_agent: str = f"moesif-core-python/{__version__}",
        timeout: float = 10.0,
    ) -> None:
        self.application_id = application_id
        self.base_uri = base_uri.rstrip("/")
        self.user_agent = user_agent
        self.timeout = timeout
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._session: Optional[requests.Session] = None
        #: the batch POST's URL, headers and ``verify``, prepared once per session (see :meth:`_post_batch`)
        self._batch_template: Optional[Tuple[str, CaseInsensitiveDict[str], Any]] = None
        if hasattr(os, "register_at_fork"):  # a lock held by another thread at fork() would never be released
            os.register_at_fork(after_in_child=self._reset_after_fork)

    def _reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._session = None
        self._batch_template = None

    @property
    def session(self) -> requests.Session:
        if self._session is None or self._pid != os.getpid():
            with self._lock:
                if self._session is None or self._pid != os.getpid():
                    s = requests.Session()
                    s.headers.update(
                        {
                            "X-Moesif-Application-Id": self.application_id,
                            "User-Agent": self.user_agent,
                            "Content-Type": "application/json; charset=utf-8",
                            "Accept": "application/json",
                        }
                    )
                    _settle_environment(s, self.base_uri)
                    self._batch_template = None
                    self._session = s
                    self._pid = os.getpid()
        return self._session

    def url(self, path: str) -> str:
        return self.base_uri + path

    def post(self, path: str, body: bytes, *, compress: bool = True, gzipped: bool = False) -> requests.Response:
        """POST ``body``, gzipped here when ``compress``; ``gzipped``: it already is (a spooled batch)."""
        headers = {}
        if compress and not gzipped:
            body = gzip_batch(body)
        if compress or gzipped:
            headers["Content-Encoding"] = "gzip"
        return self.session.post(
            self.url(path), data=body, headers=headers, timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout)
        )

    def _post_batch(self, body: bytes) -> requests.Response:
        """POST a gzipped batch to ``/v1/events/batch`` through the session's adapter, with the URL and headers
        prepared once per session (the session's headers and auth, as ``Session.post`` would send them).

        Why: ``Session.post`` prepares the URL, merges headers, settings and cookies and dispatches hooks anew for
        every batch: about as many instructions again as the adapter's own send (2.2 M against 1.2 M per POST,
        callgrind), which the worker pays on the app's cores, for every 25 or 100 events. What it skips does not
        apply here: the session reads nothing from the environment after its first call, sends no cookies to the
        collector, and a redirect (never sent by a collector; a wrong ``BASE_URI`` at most) goes the whole way
        through ``Session.post`` again, which follows it."""
        session = self.session
        template = self._batch_template
        if template is None:
            prepared = session.prepare_request(
                requests.Request("POST", self.url("/v1/events/batch"), headers={"Content-Encoding": "gzip"})
            )
            headers = prepared.headers
            headers.pop("Content-Length", None)
            url = str(prepared.url)
            # A CA bundle (REQUESTS_CA_BUNDLE) matters for https only; handed over for plain http as well, it
            # costs a stat() of its path on every batch, and each system call lets go of the GIL.
            verify = (True if session.verify is None else session.verify) if url.startswith("https:") else True
            template = self._batch_template = (url, headers, verify)
        url, headers, verify = template
        request = requests.PreparedRequest()
        request.method = "POST"
        request.url = url
        request.headers = headers.copy()
        request.headers["Content-Length"] = str(len(body))
        request.body = body
        timeout = (min(CONNECT_TIMEOUT, self.timeout), self.timeout)
        resp = session.get_adapter(url).send(
            request,
            timeout=timeout,
            verify=verify,
            cert=session.cert,
            proxies=session.proxies,
        )
        resp.content  # noqa: B018 - read the (short) answer: the connection then goes back to the pool
        if resp.is_redirect:
            resp.close()
            return session.post(url, data=body, headers={"Content-Encoding": "gzip"}, timeout=timeout)
        return resp

    def get(self, path: str, headers: Optional[Mapping[str, str]] = None) -> requests.Response:
        return self.session.get(
            self.url(path), headers=dict(headers or {}), timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout)
        )

    def send_events(self, body: bytes, *, gzipped: bool = False) -> SendResult:
        """POST an already serialised JSON array (``gzipped``: and compressed) to ``/v1/events/batch``. Never
        raises."""
        try:
            resp = self._post_batch(body if gzipped else gzip_batch(body))
        except requests.RequestException as exc:
            return SendResult(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - any failure to send is one to retry; the worker logs the error text
            return SendResult(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}")
        etag = resp.headers.get(CONFIG_ETAG_HEADER)
        resp.close()
        if 200 <= resp.status_code < 300:
            return SendResult(ok=True, status=resp.status_code, config_etag=etag)
        return SendResult(
            ok=False,
            retryable=resp.status_code in RETRYABLE_STATUS,
            status=resp.status_code,
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            config_etag=etag,
            error=f"HTTP {resp.status_code}",
        )

    # -- profiles --------------------------------------------------------------------------------------------

    def _send_profile(self, path: str, payload: Any) -> None:
        try:
            # profiles go uncompressed, as the originals send them (they are small)
            resp = self.post(path, dumps(payload), compress=False)
        except requests.RequestException as exc:
            raise MoesifAPIError(f"could not reach {self.url(path)}: {exc}") from exc
        if not 200 <= resp.status_code < 300:
            raise MoesifAPIError(
                f"{self.url(path)} answered HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code
            )

    def update_user(self, user: Mapping[str, Any]) -> None:
        self._send_profile("/v1/users", validate_profile(user, "user"))

    def update_users_batch(self, users: Sequence[Mapping[str, Any]]) -> None:
        self._send_profile("/v1/users/batch", validate_profiles(users, "user"))

    def update_company(self, company: Mapping[str, Any]) -> None:
        self._send_profile("/v1/companies", validate_profile(company, "company"))

    def update_companies_batch(self, companies: Sequence[Mapping[str, Any]]) -> None:
        self._send_profile("/v1/companies/batch", validate_profiles(companies, "company"))

    def update_subscription(self, subscription: Mapping[str, Any]) -> None:
        self._send_profile("/v1/subscriptions", validate_profile(subscription, "subscription"))

    def update_subscriptions_batch(self, subscriptions: Sequence[Mapping[str, Any]]) -> None:
        self._send_profile("/v1/subscriptions/batch", validate_profiles(subscriptions, "subscription"))


_REQUIRED = {
    "user": ("user_id",),
    "company": ("company_id",),
    "subscription": ("subscription_id", "company_id"),
}


def _plain(profile: Any) -> Dict[str, Any]:
    """Accept a dict or an object with the originals' model shape (attributes or ``to_dictionary()``)."""
    if isinstance(profile, Mapping):
        return dict(profile)
    for method in ("to_dictionary", "to_dict"):
        fn = getattr(profile, method, None)
        if callable(fn):
            result = fn()
            if isinstance(result, Mapping):
                return dict(result)
    if hasattr(profile, "__dict__"):
        return {k: v for k, v in vars(profile).items() if not k.startswith("_") and v is not None}
    raise TypeError(f"a profile must be a dict, got {type(profile).__name__}.")


def validate_profile(profile: Any, kind: str) -> Dict[str, Any]:
    """Check the required ids of one profile; raise ``ValueError`` naming the missing field."""
    data = _plain(profile)
    for key in _REQUIRED[kind]:
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError(
                f"a {kind} profile needs {' and '.join(repr(k) for k in _REQUIRED[kind])}; "
                f"{key!r} is missing or empty in {sorted(data)!r}."
            )
    return data


def validate_profiles(profiles: Any, kind: str) -> List[Dict[str, Any]]:
    if isinstance(profiles, (Mapping, str, bytes)) or not isinstance(profiles, Sequence):
        raise TypeError(f"the {kind}s batch must be a list of {kind} dicts, got {type(profiles).__name__}.")
    out = []
    for i, p in enumerate(profiles):
        try:
            out.append(validate_profile(p, kind))
        except ValueError as exc:
            raise ValueError(f"{exc} (item {i} of the batch)") from None
    return out
