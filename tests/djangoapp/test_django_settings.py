"""``settings.MOESIF_MIDDLEWARE``: read once, validated with errors that point at it; one agent per settings dict."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.test.utils import override_settings
from djt_support import STACK, one, options, serve

import moesifdjango
from moesifdjango import MoesifSettingsError
from moesifdjango.middleware import MoesifMiddleware, moesif_middleware


def _load(moesif: Any) -> None:
    """Build Django's handler (which builds the middleware) with ``MOESIF_MIDDLEWARE = moesif``."""
    with override_settings(MOESIF_MIDDLEWARE=moesif, MIDDLEWARE=STACK):
        WSGIHandler()


def test_missing_settings_points_at_moesif_middleware() -> None:
    from django.conf import settings

    with override_settings(MIDDLEWARE=STACK):
        del settings.MOESIF_MIDDLEWARE
        with pytest.raises(ImproperlyConfigured, match=r"settings\.MOESIF_MIDDLEWARE is not set"):
            WSGIHandler()


@pytest.mark.parametrize(
    ("moesif", "message"),
    [
        ({}, r"^settings\.MOESIF_MIDDLEWARE: APPLICATION_ID is missing or empty"),
        ({"APPLICATION_ID": "  "}, r"APPLICATION_ID is missing or empty"),
        (
            {"APPLICATION_ID": "x", "APLICATION_ID": "y"},
            r"unknown setting 'APLICATION_ID'\. Did you mean 'APPLICATION_ID'",
        ),
        ({"APPLICATION_ID": "x", "LOG_BODY": "yes"}, r"^settings\.MOESIF_MIDDLEWARE: LOG_BODY must be True or False"),
        ({"APPLICATION_ID": "x", "IDENTIFY_USER": "not callable"}, r"IDENTIFY_USER must be a function"),
        ({"APPLICATION_ID": "x", "BATCH_SIZE": 0}, r"BATCH_SIZE must be greater than 0"),
        ({"APPLICATION_ID": "x", "BASE_URI": "api.moesif.net"}, r"BASE_URI must be an http:// or https:// URL"),
        ({"APPLICATION_ID": "x", "REQUEST_BODY_MASKS": "password"}, r"REQUEST_BODY_MASKS must be a list"),
        (["APPLICATION_ID"], r"settings\.MOESIF_MIDDLEWARE must be a dict"),
    ],
)
def test_settings_errors_are_clear(moesif: Any, message: str) -> None:
    with pytest.raises(MoesifSettingsError, match=message) as info:
        _load(moesif)
    # Django's idiom, and the core's types, both catch it
    assert isinstance(info.value, ImproperlyConfigured)
    assert isinstance(info.value, (ValueError, TypeError))


def test_one_agent_per_settings_dict(collector: Any) -> None:
    moesif = options(collector)
    with override_settings(MOESIF_MIDDLEWARE=moesif, MIDDLEWARE=STACK):
        a = moesif_middleware(None)
        WSGIHandler()
        ASGIHandler()
        b = MoesifMiddleware(None)
        assert a.agent is b.agent
        assert a.settings is b.settings
    with override_settings(MOESIF_MIDDLEWARE=dict(moesif)):
        assert moesif_middleware(None).agent is not a.agent  # another dict: another agent


def test_django_defaults_and_user_agent(collector: Any) -> None:
    moesif = {"APPLICATION_ID": "django-test-app", "BASE_URI": collector.url}
    with serve("wsgi", moesif) as url:
        mw = moesif_middleware(None)
        assert mw.settings.batch_size == 25  # moesifdjango's default
        assert mw.settings.event_batch_timeout == 2  # the original's 2 s interval, at most
        assert mw.settings.log_body is True
        requests.get(f"{url}/hello")
        assert mw.flush(5)
        one(collector, "/hello")
    batch = [r for r in collector.requests() if r["path"] == "/v1/events/batch"]
    assert batch[0]["user_agent"] == f"moesifdjango-python/{moesifdjango.__version__}"
    assert batch[0]["app_id"] == "django-test-app"


def test_original_spellings(collector: Any) -> None:
    moesif = {
        "APPLICATION_ID": "django-test-app",
        "LOCAL_MOESIF_BASEURL": collector.url,
        "LOCAL_DEBUG": True,
        "DISABLE_TRANSACTION_ID": True,
        "EVENT_BATCH_TIMEOUT": 0.05,
    }
    with serve("asgi", moesif) as url:
        r = requests.get(f"{url}/hello")
        assert "X-Moesif-Transaction-Id" not in r.headers
        event = one(collector, "/hello")
    assert "X-Moesif-Transaction-Id" not in event["request"]["headers"]
    assert "X-Moesif-Transaction-Id" not in event["response"]["headers"]


def test_settings_are_read_once(collector: Any) -> None:
    moesif = options(collector)
    with serve("wsgi", moesif) as url:
        moesif["LOG_BODY"] = False  # too late: validated at start-up
        requests.post(f"{url}/echo", json={"a": 1})
        event = one(collector, "/echo")
    assert event["request"]["body"] == {"a": 1}


def test_a_broken_callback_never_reaches_the_app(collector: Any, moesif_log: Any) -> None:
    def broken(req: Any, res: Any) -> Any:
        raise RuntimeError("user bug")

    moesif = options(
        collector,
        IDENTIFY_USER=broken,
        IDENTIFY_COMPANY=broken,
        GET_METADATA=broken,
        SKIP=broken,
        GET_SESSION_TOKEN=broken,
    )
    for kind in ("wsgi", "asgi"):
        collector.clear()
        with serve(kind, moesif) as url:
            assert requests.get(f"{url}/hello", auth=("bob", "pw")).json() == {"hello": "world"}
            event = one(collector, "/hello")
        assert event["user_id"] == "bob"  # the callback failed: the Authorization header still identifies
        assert event["company_id"] is None and event["metadata"] is None
    assert any("IDENTIFY_USER callback raised" in r.getMessage() for r in moesif_log.records)


def test_sampling_from_the_collector_config(collector: Any) -> None:
    """The app config's sampling (``/v1/config``) applies to Django events: decided in the core's worker, where
    the user id (here from the Authorization header) and the status are known."""
    collector.set_config(
        {
            "sample_rate": 50,
            "user_sample_rate": {"alice": 100},
            "regex_config": [{"conditions": [{"path": "request.route", "value": "^/text$"}], "sample_rate": 0}],
        }
    )
    with serve("wsgi", options(collector)) as url:
        moesif_middleware(None).agent.remote.refresh_now()  # no waiting for the background fetch
        n = 40
        for i in range(n):
            requests.get(f"{url}/hello?anon={i}", headers={"Connection": "close"})
            requests.get(f"{url}/hello?alice={i}", auth=("alice", "pw"), headers={"Connection": "close"})
            requests.get(f"{url}/text?i={i}", auth=("alice", "pw"), headers={"Connection": "close"})
        assert moesif_middleware(None).flush(10)
    events = collector.events()
    alice = [e for e in events if e["user_id"] == "alice"]
    anon = [e for e in events if e["user_id"] is None]
    assert len(alice) == n and {e["weight"] for e in alice} == {1}
    assert all("/hello?alice=" in e["request"]["uri"] for e in alice)  # /text: regex_config rate 0 wins
    assert 0 < len(anon) < n and {e["weight"] for e in anon} == {2}
