"""Sync and async: the middleware runs on the event loop in an async ASGI stack, and sync under WSGI."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

import djt_views
import pytest
import requests
from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.test.utils import override_settings
from djt_support import STACK, b64, check_event, one, options, serve

from moesifdjango.middleware import moesif_middleware

MOESIF_ONLY = ["moesifdjango.middleware.moesif_middleware"]


def test_capabilities_follow_get_response() -> None:
    def sync_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    async def async_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    assert moesif_middleware.sync_capable is True and moesif_middleware.async_capable is True
    with override_settings(MOESIF_MIDDLEWARE={"APPLICATION_ID": "x", "BASE_URI": "http://127.0.0.1:9"}):
        assert not iscoroutinefunction(moesif_middleware(sync_view))
        assert iscoroutinefunction(moesif_middleware(async_view))


@pytest.mark.parametrize("stack", [MOESIF_ONLY, STACK], ids=["moesif-only", "readme-stack"])
def test_async_view_under_asgi_never_leaves_the_loop_for_us(
    stack: list[str], collector: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seen: dict[str, Any] = {}

    def identify_company(req: Any, res: Any) -> str:
        seen["thread"] = threading.get_ident()
        seen["loop"] = asyncio.get_running_loop()  # raises if we were called in a thread
        return "acme"

    marker = uuid.uuid4().hex
    caplog.set_level(logging.DEBUG, logger="django.request")
    with serve("asgi", options(collector, IDENTIFY_COMPANY=identify_company), middleware=stack, DEBUG=True) as url:
        r = requests.get(f"{url}/async/json?marker={marker}")
        assert r.json() == {"async": True, "marker": marker}
        event = one(collector, "/async/json")
    check_event(event, verb="GET", uri=f"{url}/async/json?marker={marker}", status=200)
    assert event["company_id"] == "acme"
    assert seen["thread"] == djt_views.SEEN_THREADS[marker]  # the async view's thread: the event loop's
    # Django adapts (switches thread for) any middleware that cannot run in the handler's mode; never ours
    adapted = [r.getMessage() for r in caplog.records if "adapted" in r.getMessage()]
    assert not [m for m in adapted if "moesifdjango" in m], adapted


def test_async_callbacks_are_awaited(collector: Any) -> None:
    async def identify_user(req: Any, res: Any) -> str:
        await asyncio.sleep(0)
        return "async-user"

    async def get_metadata(req: Any, res: Any) -> dict[str, Any]:
        return {"awaited": True}

    moesif = options(collector, IDENTIFY_USER=identify_user, GET_METADATA=get_metadata)
    with serve("asgi", moesif, middleware=MOESIF_ONLY) as url:
        requests.get(f"{url}/async/json")
        event = one(collector, "/async/json")
    assert event["user_id"] == "async-user"
    assert event["metadata"] == {"awaited": True}


def test_async_callback_in_sync_mode_is_ignored_with_a_warning(collector: Any, moesif_log: Any) -> None:
    async def identify_user(req: Any, res: Any) -> str:
        return "never"

    with serve("wsgi", options(collector, IDENTIFY_USER=identify_user)) as url:
        requests.get(f"{url}/hello")
        event = one(collector, "/hello")
    assert event["user_id"] is None
    assert any("IDENTIFY_USER callback is async" in r.getMessage() for r in moesif_log.records)


def test_async_streaming_response(collector: Any) -> None:
    with serve("asgi", options(collector), middleware=MOESIF_ONLY) as url:
        r = requests.get(f"{url}/async/stream")
        assert r.content == b"".join(djt_views.STREAM_CHUNKS)
        event = one(collector, "/async/stream")
    check_event(event, verb="GET", uri=f"{url}/async/stream", status=200)
    assert b64(event["response"]["body"]) == b"".join(djt_views.STREAM_CHUNKS)
    assert event["request"]["time"] <= event["response"]["time"]


def test_async_view_exception_is_a_500(collector: Any) -> None:
    with serve("asgi", options(collector), middleware=MOESIF_ONLY) as url:
        assert requests.get(f"{url}/async/boom").status_code == 500
        event = one(collector, "/async/boom")
    check_event(event, verb="GET", uri=f"{url}/async/boom", status=500)


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_async_views_body_and_user(kind: str, collector: Any) -> None:
    with serve(kind, options(collector)) as url:
        s = requests.Session()
        s.post(f"{url}/login", data={"username": "alice", "password": "wonderland"})
        assert s.get(f"{url}/async/whoami").json() == {"user": "alice"}
        assert s.post(f"{url}/async/echo", json={"k": [1, 2]}).json() == {"len": 13, "parsed": {"k": [1, 2]}}
        whoami = one(collector, "/async/whoami")
        echo = one(collector, "/async/echo")
    assert whoami["user_id"] == "alice"  # the view resolved the user (auser() or in a thread): we use it
    assert echo["request"]["body"] == {"k": [1, 2]}
    assert echo["response"]["body"] == {"len": 13, "parsed": {"k": [1, 2]}}
    assert echo["session_token"] == s.cookies["sessionid"]
