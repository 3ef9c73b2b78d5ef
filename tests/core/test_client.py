"""The ingestion client, against `responses`: headers, gzip, retry decisions, Retry-After, timeouts, profiles."""

from __future__ import annotations

import gzip
import json
import logging
from typing import Any

import pytest
import requests
import responses

from moesif_core import MoesifAPIClient, MoesifAPIError, ProfileHelpers
from moesif_core.client import IngestionClient, parse_retry_after

BASE = "http://127.0.0.1:9"


def own_calls() -> list[Any]:
    """Calls to this test's fake base URI (background threads of other tests' agents may call elsewhere)."""
    return [c for c in responses.calls if c.request.url.startswith(BASE)]


def client() -> IngestionClient:
    return IngestionClient("my-app-id", BASE + "/", user_agent="moesifwsgi-python/9.9", timeout=2.0)


@responses.activate
def test_batch_post_headers_and_gzip_body() -> None:
    responses.post(BASE + "/v1/events/batch", status=201, headers={"X-Moesif-Config-ETag": "etag-1"})
    result = client().send_events(json.dumps([{"a": 1}]).encode())
    assert result.ok and result.config_etag == "etag-1"
    call = own_calls()[0].request
    assert call.headers["X-Moesif-Application-Id"] == "my-app-id"
    assert call.headers["User-Agent"] == "moesifwsgi-python/9.9"
    assert call.headers["Content-Type"] == "application/json; charset=utf-8"
    assert call.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(call.body)) == [{"a": 1}]


@responses.activate
@pytest.mark.parametrize(
    "status,retryable",
    [(500, True), (502, True), (503, True), (429, True), (408, True), (400, False), (401, False), (413, False)],
)
def test_retry_decision_by_status(status: int, retryable: bool) -> None:
    responses.post(BASE + "/v1/events/batch", status=status)
    result = client().send_events(b"[]")
    assert not result.ok and result.retryable is retryable and result.status == status


@responses.activate
def test_retry_after_is_read() -> None:
    responses.post(BASE + "/v1/events/batch", status=429, headers={"Retry-After": "7"})
    assert client().send_events(b"[]").retry_after == 7.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@responses.activate
@pytest.mark.parametrize(
    "exc", [requests.ConnectTimeout("t"), requests.ReadTimeout("t"), requests.ConnectionError("refused")]
)
def test_network_errors_never_raise_and_are_retryable(exc: Exception) -> None:
    responses.post(BASE + "/v1/events/batch", body=exc)
    result = client().send_events(b"[]")
    assert not result.ok and result.retryable and result.error


def test_every_call_has_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []

    def fake_send(self: requests.adapters.HTTPAdapter, request: Any, **kw: object) -> requests.Response:
        if request.url.startswith(BASE):  # other tests' background threads may call too
            seen.append(kw.get("timeout"))
        r = requests.Response()
        r.status_code = 200
        r._content = b""
        r._content_consumed = True
        r.request = request
        return r

    # where every call goes through, whether through Session.request or prepared once (event batches)
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", fake_send)
    c = client()
    c.send_events(b"[]")
    c.update_user({"user_id": "u"})
    c.get("/v1/config")
    assert len(seen) == 3 and all(isinstance(t, tuple) and all(t) for t in seen)


@responses.activate
def test_a_batch_goes_out_as_the_session_would_send_it_and_follows_a_redirect() -> None:
    """Event batches are sent with headers prepared once per session: each batch carries its own length and body,
    the session's headers and auth (a ~/.netrc entry) are there, and a redirect (a BASE_URI that moved) is
    followed as Session.post follows it."""
    responses.post(BASE + "/v1/events/batch", status=307, headers={"Location": BASE + "/v2/events/batch"})
    responses.post(BASE + "/v2/events/batch", status=201)
    c = client()
    c.session.auth = ("user", "pass")
    c._batch_template = None  # as after _settle_environment found a ~/.netrc entry
    for payload in (b"[1]", b"[1, 2, 3]"):
        assert c.send_events(payload).ok
    sent = [call.request for call in own_calls() if call.request.url.endswith("/v2/events/batch")]
    assert [gzip.decompress(r.body) for r in sent] == [b"[1]", b"[1, 2, 3]"]
    for r in sent:
        assert r.headers["Content-Length"] == str(len(r.body))
        assert r.headers["Authorization"].startswith("Basic ")
        assert r.headers["X-Moesif-Application-Id"] == "my-app-id" and r.headers["Content-Encoding"] == "gzip"


@responses.activate
def test_profiles_endpoints_and_bodies() -> None:
    for path in ("users", "users/batch", "companies", "companies/batch", "subscriptions", "subscriptions/batch"):
        responses.post(f"{BASE}/v1/{path}", status=201)
    api = MoesifAPIClient("my-app-id", base_uri=BASE).api
    api.update_user({"user_id": "12345", "metadata": {"email": "john@acmeinc.com"}})
    api.update_users_batch([{"user_id": "a"}, {"user_id": "b"}])
    api.update_company({"company_id": "67890"})
    api.update_companies_batch([{"company_id": "1"}])
    api.update_subscription({"subscription_id": "s1", "company_id": "c1", "status": "active"})
    api.update_subscriptions_batch([{"subscription_id": "s1", "company_id": "c1"}])
    paths = [c.request.url.split("/v1/")[1] for c in own_calls()]
    assert paths == ["users", "users/batch", "companies", "companies/batch", "subscriptions", "subscriptions/batch"]
    assert json.loads(own_calls()[0].request.body)["user_id"] == "12345"
    assert json.loads(own_calls()[1].request.body) == [{"user_id": "a"}, {"user_id": "b"}]


@responses.activate
def test_missing_ids_refused_before_any_network_call() -> None:
    api = MoesifAPIClient("my-app-id", base_uri=BASE).api
    with pytest.raises(ValueError, match="'user_id' is missing"):
        api.update_user({"company_id": "x"})
    with pytest.raises(ValueError, match="'company_id' is missing"):
        api.update_company({"company_domain": "acme.com"})
    with pytest.raises(ValueError, match="'company_id' is missing"):
        api.update_subscription({"subscription_id": "s"})
    with pytest.raises(ValueError, match=r"item 1 of the batch"):
        api.update_users_batch([{"user_id": "a"}, {"user_id": ""}])
    with pytest.raises(TypeError, match="must be a list"):
        api.update_users_batch({"user_id": "a"})  # type: ignore[arg-type]
    assert len(own_calls()) == 0


@responses.activate
def test_api_raises_on_refusal() -> None:
    responses.post(BASE + "/v1/users", status=401, body="bad app id")
    with pytest.raises(MoesifAPIError) as info:
        MoesifAPIClient("my-app-id", base_uri=BASE).api.update_user({"user_id": "u"})
    assert info.value.status == 401


class Middleware(ProfileHelpers):
    """The profile helpers as a middleware has them."""

    def __init__(self) -> None:
        self.client = client()


@responses.activate
def test_middleware_helpers_log_instead_of_raising(caplog: pytest.LogCaptureFixture) -> None:
    responses.post(BASE + "/v1/users", status=500)
    mw = Middleware()
    caplog.set_level(logging.INFO, logger="moesif")
    assert mw.update_user({"company_id": "no user id"}) is False
    assert "user_id" in caplog.text and len(own_calls()) == 0
    assert mw.update_user({"user_id": "u"}) is False
    assert "HTTP 500" in caplog.text
    assert "my-app-id" not in caplog.text


@responses.activate
def test_profile_failures_log_one_line_with_one_prefix(caplog: pytest.LogCaptureFixture) -> None:
    """Each way a profile helper fails gives one log line, with the ``moesif:`` prefix once (the exceptions it
    reports carry none of their own)."""
    responses.post(BASE + "/v1/users", status=500, body="try later")
    responses.post(BASE + "/v1/companies", body=requests.ConnectionError("refused"))
    mw = Middleware()
    caplog.set_level(logging.INFO, logger="moesif")
    assert mw.update_user({"company_id": "c"}) is False
    assert [r.getMessage() for r in caplog.records] == [
        "moesif: update_user not sent: a user profile needs 'user_id'; 'user_id' is missing or empty in ['company_id']."
    ]
    assert mw.update_users_batch({"user_id": "u"}) is False  # type: ignore[arg-type]
    assert mw.update_user({"user_id": "u"}) is False
    assert mw.update_company({"company_id": "c"}) is False
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert lines[1] == "moesif: update_users_batch not sent: the users batch must be a list of user dicts, got dict."
    assert lines[2] == f"moesif: update_user not sent: {BASE}/v1/users answered HTTP 500: try later"
    assert lines[3].startswith(f"moesif: update_company not sent: could not reach {BASE}/v1/companies: ")
    assert all(line.count("moesif:") == 1 for line in lines), lines


def test_api_client_needs_an_application_id() -> None:
    with pytest.raises(ValueError, match="Application Id"):
        MoesifAPIClient("")
