"""The README's profile helpers on a middleware object, and CAPTURE_OUTGOING_REQUESTS, against the real collector."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.test.utils import override_settings
from djt_support import KINDS, options, serve, wait_for_path

import moesifpythonrequest
from moesifdjango.middleware import MoesifMiddleware, moesif_middleware


@pytest.fixture
def middleware(collector: Any) -> Iterator[Any]:
    with override_settings(MOESIF_MIDDLEWARE=options(collector)):
        yield MoesifMiddleware(None)  # as the README writes it


def test_update_user_and_users_batch(middleware: Any, collector: Any) -> None:
    user = {
        "user_id": "12345",
        "company_id": "67890",
        "campaign": {
            "utm_source": "google",
            "utm_medium": "cpc",
            "utm_campaign": "adwords",
            "utm_term": "api+tooling",
            "utm_content": "landing",
        },
        "metadata": {
            "email": "john@acmeinc.com",
            "first_name": "John",
            "last_name": "Doe",
            "sales_info": {"stage": "Customer", "lifetime_value": 24000},
        },
    }
    assert middleware.update_user(user) is True
    user_b = {"user_id": "54321", "company_id": "67890", "metadata": {"email": "mary@acmeinc.com"}}
    user_c = {"user_id": "99999", "metadata": {"plan": "free"}}
    assert middleware.update_users_batch([user_b, user_c]) is True
    users = {u["user_id"]: u for u in collector.users()}
    assert set(users) == {"12345", "54321", "99999"}
    stored = json.loads(users["12345"]["json"]) if "json" in users["12345"] else users["12345"]
    assert stored["metadata"]["sales_info"]["lifetime_value"] == 24000
    assert stored["campaign"]["utm_source"] == "google"


def test_update_company_and_companies_batch(middleware: Any, collector: Any) -> None:
    company = {
        "company_id": "67890",
        "company_domain": "acmeinc.com",
        "metadata": {"org_name": "Acme, Inc", "plan_name": "Free", "mrr": 24000},
    }
    assert middleware.update_company(company) is True
    assert (
        middleware.update_companies_batch(
            [
                {"company_id": "09876", "company_domain": "contoso.com", "metadata": {"mrr": 48000}},
                {"company_id": "11111"},
            ]
        )
        is True
    )
    assert {c["company_id"] for c in collector.companies()} == {"67890", "09876", "11111"}


def test_update_subscription_and_subscriptions_batch(middleware: Any, collector: Any) -> None:
    sub = {
        "subscription_id": "sub_67890",
        "company_id": "3456",
        "status": "active",
        "metadata": {"plan_name": "Pro", "mrr": 12000, "currency": "USD"},
    }
    assert middleware.update_subscription(sub) is True
    assert (
        middleware.update_subscriptions_batch(
            [
                {"subscription_id": "sub_54321", "company_id": "6789", "status": "active"},
                {"subscription_id": "sub_11111", "company_id": "6789", "status": "cancelled"},
            ]
        )
        is True
    )
    assert {s["subscription_id"] for s in collector.subscriptions()} == {"sub_67890", "sub_54321", "sub_11111"}


def test_profiles_as_json_strings_like_the_original(middleware: Any, collector: Any) -> None:
    assert middleware.update_user(json.dumps({"user_id": "json-user"})) is True
    assert [u["user_id"] for u in collector.users()] == ["json-user"]


def test_invalid_profiles_are_refused_before_sending(middleware: Any, collector: Any, moesif_log: Any) -> None:
    """As the original, the helpers never raise into the app: a bad profile is logged (naming the field)."""
    assert middleware.update_user({"company_id": "x"}) is False
    assert middleware.update_subscription({"company_id": "x", "status": "active"}) is False
    assert middleware.update_companies_batch([{"company_id": "a"}, {"metadata": {}}]) is False
    assert middleware.update_users_batch({"user_id": "not-a-list"}) is False
    assert middleware.update_user("{not json") is False
    messages = "\n".join(r.getMessage() for r in moesif_log.records)
    assert "'user_id' is missing" in messages and "subscription_id" in messages and "item 1" in messages
    assert "not JSON" in messages
    sent = [r for r in collector.requests() if r["method"] == "POST"]
    assert sent == []  # nothing was sent (the agent's background GETs of /v1/config and /v1/rules aside)


def test_collector_down_is_logged_not_raised(moesif_log: Any) -> None:
    with override_settings(
        MOESIF_MIDDLEWARE={"APPLICATION_ID": "x", "BASE_URI": "http://127.0.0.1:9", "REQUEST_TIMEOUT": 2}
    ):
        assert moesif_middleware(None).update_user({"user_id": "u"}) is False
    assert any("could not reach" in r.getMessage() for r in moesif_log.records)


@pytest.mark.parametrize("kind", KINDS)
def test_capture_outgoing_requests(kind: str, collector: Any) -> None:
    """CAPTURE_OUTGOING_REQUESTS with the *_OUTGOING callbacks (req, res are requests' objects)."""
    moesif = options(
        collector,
        CAPTURE_OUTGOING_REQUESTS=True,
        IDENTIFY_USER_OUTGOING=lambda req, res: "outgoing-user",
        GET_METADATA_OUTGOING=lambda req, res: {"outgoing_status": res.status_code},
    )
    moesifpythonrequest.stop()  # capture is process-wide: start from a clean slate whatever ran before
    try:
        with serve(kind, moesif) as url:
            assert requests.get(f"{url}/call-out").json() == {"outgoing_status": 200}
            # capture is process-wide: the test's own call to /call-out is an outgoing event too
            calls = wait_for_path(collector, "/call-out", 2)
            events = wait_for_path(collector, "/hello", 2)
    finally:
        moesifpythonrequest.stop()
    outgoing = [e for e in events if e["direction"] == "Outgoing"]
    served = [e for e in events if e["direction"] == "Incoming"]
    assert len(outgoing) == 1 and len(served) == 1
    assert outgoing[0]["request"]["uri"] == f"{url}/hello?from=outgoing"
    assert outgoing[0]["user_id"] == "outgoing-user"
    assert outgoing[0]["metadata"] == {"outgoing_status": 200}
    (incoming,) = [e for e in calls if e["direction"] == "Incoming"]
    assert incoming["response"]["body"] == {"outgoing_status": 200}
    # the middleware's own calls to the collector are never captured
    assert not [e for e in collector.events() if e["request"]["uri"].startswith(collector.url)]
