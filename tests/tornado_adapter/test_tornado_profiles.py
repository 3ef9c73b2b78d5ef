"""The README's profile helpers, against the real collector."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tornado_support import APP_ID, wait_for_requests

import moesiftornado
from moesiftornado import MoesifMiddleware

USER_PROFILE = {
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
        "title": "Software Engineer",
        "sales_info": {"stage": "Customer", "lifetime_value": 24000, "account_owner": "mary@contoso.com"},
    },
}
USER_B = {
    "user_id": "54321",
    "company_id": "67890",
    "metadata": {"email": "mary@acmeinc.com", "first_name": "Mary", "last_name": "Jane"},
}
COMPANY_PROFILE = {
    "company_id": "67890",
    "company_domain": "acmeinc.com",
    "campaign": {"utm_source": "google", "utm_medium": "cpc"},
    "metadata": {
        "org_name": "Acme, Inc",
        "plan_name": "Free",
        "deal_stage": "Lead",
        "mrr": 24000,
        "demographics": {"alexa_ranking": 500000, "employee_count": 47},
    },
}
COMPANY_B = {
    "company_id": "09876",
    "company_domain": "contoso.com",
    "metadata": {"org_name": "Contoso, Inc", "plan_name": "Free", "mrr": 48000},
}


def test_readme_profile_helpers(collector: Any, make_middleware: Any) -> None:
    middleware = make_middleware()
    assert middleware.update_user(USER_PROFILE) is True
    assert middleware.update_users_batch([USER_PROFILE | {"user_id": "12345-b"}, USER_B]) is True
    assert middleware.update_company(COMPANY_PROFILE) is True
    assert middleware.update_companies_batch([COMPANY_PROFILE | {"company_id": "11111"}, COMPANY_B]) is True

    users = {u["user_id"]: u for u in collector.users()}
    assert set(users) == {"12345", "12345-b", "54321"}
    for key, value in USER_PROFILE.items():
        if key != "user_id":
            assert users["12345"][key] == value, key
    assert users["54321"]["metadata"] == USER_B["metadata"]
    companies = {c["company_id"]: c for c in collector.companies()}
    assert set(companies) == {"67890", "11111", "09876"}
    assert companies["67890"]["company_domain"] == "acmeinc.com"
    assert companies["67890"]["metadata"] == COMPANY_PROFILE["metadata"]
    assert companies["09876"]["metadata"] == COMPANY_B["metadata"]

    rows = wait_for_requests(collector, lambda r: r["path"].startswith(("/v1/users", "/v1/companies")))
    assert {r["path"] for r in rows} >= {"/v1/users", "/v1/users/batch", "/v1/companies", "/v1/companies/batch"}
    assert all(r["user_agent"] == f"moesiftornado-python/{moesiftornado.__version__}" for r in rows)
    assert all(r["app_id"] == APP_ID for r in rows)


def test_profile_helpers_validate_before_sending(
    collector: Any, make_middleware: Any, moesif_log: pytest.LogCaptureFixture
) -> None:
    # as the original: invalid input is reported (naming the field) and never raised into the app
    middleware = make_middleware()
    assert middleware.update_user({"company_id": "67890"}) is False
    assert middleware.update_companies_batch([COMPANY_B, {"company_domain": "x.com"}]) is False
    assert middleware.update_users_batch(USER_B) is False
    errors = [r.getMessage() for r in moesif_log.records if r.levelno >= logging.ERROR]
    assert any("user_id" in m for m in errors) and any("company_id" in m for m in errors)
    assert collector.users() == [] and collector.companies() == []
    assert not [r for r in collector.requests() if r["path"].startswith(("/v1/users", "/v1/companies"))]


def test_profile_helpers_never_raise_network_errors(collector: Any, moesif_log: pytest.LogCaptureFixture) -> None:
    url = collector.url
    collector.stop()  # nothing listens there any more
    middleware = MoesifMiddleware({"APPLICATION_ID": APP_ID, "BASE_URI": url, "REQUEST_TIMEOUT": 2})
    try:
        assert middleware.update_user(USER_PROFILE) is False
        assert middleware.update_company(COMPANY_PROFILE) is False
    finally:
        middleware.shutdown(0)
    warnings = [r for r in moesif_log.records if r.levelno >= logging.WARNING and r.name == "moesif"]
    assert len(warnings) >= 2
