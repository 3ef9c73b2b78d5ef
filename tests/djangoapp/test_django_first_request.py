"""Django: the config and rules are fetched when the middleware is built (``get_wsgi_application()``), so a
blocking rule holds from the very first request once ``moesifdjango.wait_for_config`` says they are known."""

from __future__ import annotations

import uuid
from typing import Any

import djt_views
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client, override_settings
from djt_support import STACK, options

import moesifdjango

BLOCK_GOV = {
    "_id": "maintenance",
    "type": "regex",
    "block": True,
    "applied_to": "matching",
    "regex_config": [{"conditions": [{"path": "request.route", "value": "/gov/"}]}],
    "response": {"status": 503, "body": {"error": "maintenance"}},
}


def test_blocking_rule_holds_from_the_first_request(collector: Any) -> None:
    collector.set_rules([BLOCK_GOV])
    opts = options(collector)
    name = f"first-{uuid.uuid4().hex}"
    with override_settings(MOESIF_MIDDLEWARE=opts, MIDDLEWARE=STACK):
        WSGIHandler()  # what wsgi.py's get_wsgi_application() does: builds the middleware, the fetch starts
        assert moesifdjango.wait_for_config(5)
        first = Client().get(f"/gov/{name}")
        assert first.status_code == 503 and first.json() == {"error": "maintenance"}
        assert name not in djt_views.CALLS
        assert moesifdjango.flush(5)
    (event,) = collector.wait_for_events(1)
    assert event["blocked_by"] == "maintenance"
