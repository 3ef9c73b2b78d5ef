"""``MoesifMiddlewarePre19``: ``process_request``/``process_response`` driven by Django's own machinery.

A modern Django has no ``MIDDLEWARE_CLASSES``, so the hooks are driven (1) by ``decorator_from_middleware`` around
a view (``/pre19/...`` in djt_urls: Django calls ``process_request``, the view, then ``process_response``, as the
old handler did) and (2) with the class listed in ``MIDDLEWARE`` (it adapts like ``MiddlewareMixin``). Both under
real WSGI and ASGI servers; the events must equal the new-style middleware's.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests
from django.test.utils import override_settings
from djt_support import KINDS, STACK, check_event, one, options, serve

from moesifdjango.middleware_pre19 import MoesifMiddlewarePre19

PRE19 = "moesifdjango.middleware_pre19.MoesifMiddlewarePre19"
STACK_WITHOUT_MOESIF = STACK[:-1]
STACK_PRE19 = [*STACK_WITHOUT_MOESIF, PRE19]


def _comparable(event: dict[str, Any]) -> dict[str, Any]:
    """An event without what differs between two calls (times, ids, ports)."""
    req, resp = dict(event["request"]), dict(event["response"])
    for side in (req, resp):
        side.pop("time")
        side["headers"] = sorted(k for k in side["headers"] if k not in ("Host",))
    req.pop("uri")
    return {**event, "request": req, "response": resp, "transaction_id": None}


@pytest.mark.parametrize("kind", KINDS)
def test_decorator_driven_hooks_give_the_same_event_as_the_new_middleware(kind: str, collector: Any) -> None:
    body = {"name": "x", "items": [1, 2, 3]}
    moesif = options(
        collector,
        IDENTIFY_COMPANY=lambda req, res: "acme",
        GET_METADATA=lambda req, res: {"path": req.path.replace("/pre19", "")},
    )
    with serve(kind, moesif, middleware=STACK_WITHOUT_MOESIF) as url:
        r = requests.post(f"{url}/pre19/echo?q=1", json=body, headers={"X-Case": "pre19"})
        assert r.status_code == 200 and r.json()["parsed"] == body
        assert "X-Moesif-Transaction-Id" in r.headers
        old = one(collector, "/pre19/echo")
    collector.clear()
    with serve(kind, moesif) as url2:
        requests.post(f"{url2}/echo?q=1", json=body, headers={"X-Case": "pre19"})
        new = one(collector, "/echo")
    check_event(old, verb="POST", uri=f"{url}/pre19/echo?q=1", status=200)
    assert old["transaction_id"] == r.headers["X-Moesif-Transaction-Id"]
    assert _comparable(old) == _comparable(new)
    assert old["company_id"] == "acme" and old["metadata"] == {"path": "/echo"}


@pytest.mark.parametrize("kind", KINDS)
def test_listed_in_middleware(kind: str, collector: Any) -> None:
    with serve(kind, options(collector), middleware=STACK_PRE19) as url:
        s = requests.Session()
        s.post(f"{url}/login", data={"username": "alice", "password": "wonderland"})
        r = s.get(f"{url}/whoami")
        assert r.json() == {"user": "alice"}
        assert requests.get(f"{url}/boom").status_code == 500
        whoami = one(collector, "/whoami")
        boom = one(collector, "/boom")
    check_event(whoami, verb="GET", uri=f"{url}/whoami", status=200)
    assert whoami["user_id"] == "alice" and whoami["session_token"] == s.cookies["sessionid"]
    assert whoami["response"]["body"] == {"user": "alice"}
    check_event(boom, verb="GET", uri=f"{url}/boom", status=500)  # process_response sees Django's 500


def test_pre19_is_sync_only_and_django_adapts_it(collector: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The old-style class declares itself sync-only: under ASGI Django runs it in a thread (and says so), which
    is also the control for the "never adapted" check of the new-style middleware."""
    caplog.set_level(logging.DEBUG, logger="django.request")
    with serve("asgi", options(collector), middleware=[PRE19], DEBUG=True) as url:
        assert requests.get(f"{url}/async/json").status_code == 200
        one(collector, "/async/json")
    assert any("adapted" in r.getMessage() and PRE19 in r.getMessage() for r in caplog.records)


def test_built_without_arguments_like_old_django(collector: Any) -> None:
    with override_settings(MOESIF_MIDDLEWARE=options(collector)):
        mw = MoesifMiddlewarePre19()
        assert mw.update_user({"user_id": "pre19-user"}) is True
        with pytest.raises(TypeError, match="MIDDLEWARE_CLASSES"):
            mw(object())  # type: ignore[arg-type]
    assert [u["user_id"] for u in collector.users()] == ["pre19-user"]
