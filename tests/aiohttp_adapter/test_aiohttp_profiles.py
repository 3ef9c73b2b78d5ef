"""The README's profile helpers on the middleware, against the real collector, and the User-Agent they send."""

from __future__ import annotations

import time
from typing import Any

import moesif_aiohttp

USER = {"user_id": "12345", "company_id": "67890", "metadata": {"email": "john@acmeinc.com", "plan": "pro"}}
USER_B = {"user_id": "54321", "company_id": "67890", "metadata": {"email": "mary@acmeinc.com"}}
COMPANY = {"company_id": "67890", "company_domain": "acmeinc.com", "metadata": {"org_name": "Acme, Inc", "mrr": 24000}}
COMPANY_B = {"company_id": "09876", "company_domain": "contoso.com", "metadata": {"org_name": "Contoso, Inc"}}


def test_readme_profile_helpers(collector: Any, make_middleware: Any) -> None:
    middleware = make_middleware()
    assert middleware.update_user(USER) is True
    assert middleware.update_users_batch([USER_B]) is True
    assert middleware.update_company(COMPANY) is True
    assert middleware.update_companies_batch([COMPANY_B]) is True
    users = {u["user_id"]: u for u in collector.users()}
    assert set(users) == {"12345", "54321"} and users["12345"]["metadata"] == USER["metadata"]
    companies = {c["company_id"]: c for c in collector.companies()}
    assert set(companies) == {"67890", "09876"} and companies["67890"]["company_domain"] == "acmeinc.com"
    deadline = time.monotonic() + 10
    while True:  # the collector logs each request after answering it
        rows = [r for r in collector.requests() if r["path"].startswith(("/v1/users", "/v1/companies"))]
        if len(rows) == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert {r["path"] for r in rows} == {"/v1/users", "/v1/users/batch", "/v1/companies", "/v1/companies/batch"}
    assert {r["user_agent"] for r in rows} == {f"moesif_aiohttp-python/{moesif_aiohttp.__version__}"}
