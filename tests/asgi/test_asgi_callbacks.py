"""The README's options, end to end on FastAPI and Starlette: callbacks as plain functions and as ``async def``,
what they are handed, and callbacks that raise."""

from __future__ import annotations

import base64
import threading
from typing import Any, Callable, Dict, List

import httpx
import pytest
from asgi_support import UvicornServer, check_shape, event_for
from starlette.requests import Request

from moesif_core.build import MASK_FAILED_METADATA_KEY
from moesifasgi import CallbackResponse


def readme_settings(mode: str) -> Dict[str, Any]:
    """The README's example settings, in its sync or its async flavour (the same values either way)."""
    custom_metadata = {"datacenter": "westus", "deployment_version": "v1.2.3"}
    skip_route = "health/probe"

    def custom_mask_event(eventmodel: Any) -> Any:
        if "password" in eventmodel.request.body:
            eventmodel.request.body["password"] = None
        return eventmodel

    if mode == "sync":

        def identify_user(request: Any, response: Any) -> str:
            return "12345"

        def identify_company(request: Any, response: Any) -> str:
            return "67890"

        def get_token(request: Any, response: Any) -> str:
            return "XXXXXXXXXXXXXX"

        def get_metadata(request: Any, response: Any) -> Dict[str, Any]:
            return custom_metadata

        def should_skip(request: Any, response: Any) -> bool:
            return skip_route in request.url._url

        def mask_event(eventmodel: Any) -> Any:
            return custom_mask_event(eventmodel)

        callbacks = (identify_user, identify_company, get_token, get_metadata, should_skip, mask_event)
    else:

        async def identify_user(request: Any, response: Any) -> str:  # type: ignore[misc]
            return "12345"

        async def identify_company(request: Any, response: Any) -> str:  # type: ignore[misc]
            return "67890"

        async def get_token(request: Any, response: Any) -> str:  # type: ignore[misc]
            return "XXXXXXXXXXXXXX"

        async def get_metadata(request: Any, response: Any) -> Dict[str, Any]:  # type: ignore[misc]
            return custom_metadata

        async def should_skip(request: Any, response: Any) -> bool:  # type: ignore[misc]
            return skip_route in request.url._url

        async def mask_event(eventmodel: Any) -> Any:  # type: ignore[misc]
            return custom_mask_event(eventmodel)

        callbacks = (identify_user, identify_company, get_token, get_metadata, should_skip, mask_event)
    identify_user, identify_company, get_token, get_metadata, should_skip, mask_event = callbacks
    return {
        "DEBUG": False,
        "LOG_BODY": True,
        "IDENTIFY_USER": identify_user,
        "IDENTIFY_COMPANY": identify_company,
        "GET_SESSION_TOKEN": get_token,
        "SKIP": should_skip,
        "MASK_EVENT_MODEL": mask_event,
        "GET_METADATA": get_metadata,
        "CAPTURE_OUTGOING_REQUESTS": False,
        "BATCH_SIZE": 25,
        "EVENT_QUEUE_SIZE": 1000,
        "API_VERSION": "v2",
    }


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_readme_example_settings(mode: str, served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served(**readme_settings(mode))
    with httpx.Client(base_url=server.url) as client:
        client.get("/health/probe")  # skipped by SKIP
        r = client.post("/echo", json={"user": "u", "password": "hunter2"})
        client.get("/health/probe")
    assert r.status_code == 200
    (event,) = collector.wait_for_events(1)
    check_shape(event)
    assert event["request"]["uri"].endswith("/echo")
    assert event["user_id"] == "12345"
    assert event["company_id"] == "67890"
    assert event["session_token"] == "XXXXXXXXXXXXXX"
    assert event["metadata"] == {"datacenter": "westus", "deployment_version": "v1.2.3"}
    assert event["request"]["body"] == {"user": "u", "password": None}  # MASK_EVENT_MODEL
    assert event["request"]["api_version"] == "v2"


def test_authorization_header_name_and_field(served: Callable[..., UvicornServer], collector: Any) -> None:
    server = served(AUTHORIZATION_HEADER_NAME="X-Api-Key, Authorization", AUTHORIZATION_USER_ID_FIELD="uid")
    token = base64.urlsafe_b64encode(b'{"uid": "from-api-key"}').decode().rstrip("=")
    with httpx.Client(base_url=server.url) as client:
        client.get("/hello", headers={"X-Api-Key": f"Bearer h.{token}.s", "Authorization": "Basic Ym9iOnB3"})
    (event,) = collector.wait_for_events(1)
    assert event["user_id"] == "from-api-key"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_callbacks_get_live_starlette_objects(mode: str, served: Callable[..., UvicornServer], collector: Any) -> None:
    seen: List[Dict[str, Any]] = []

    def look(request: Request, response: CallbackResponse) -> Dict[str, Any]:
        info = {
            "path_params": dict(request.path_params),
            "state_user": getattr(request.state, "user", None),
            "url": str(request.url),
            "header": request.headers.get("x-case"),
            "client": request.client.host if request.client else None,
            "status": response.status_code,
            "resp_type": response.headers.get("content-type"),
            "tid": response.headers.get("x-moesif-transaction-id"),
            "body": response.body,
            "type": type(request).__name__,
        }
        seen.append(info)
        return {"state_user": info["state_user"]}

    if mode == "sync":
        get_metadata: Any = look
    else:

        async def get_metadata(request: Request, response: CallbackResponse) -> Dict[str, Any]:
            body = await request.body()
            result = look(request, response)
            result["request_body"] = body.decode()
            return result

    server = served(GET_METADATA=get_metadata)
    with httpx.Client(base_url=server.url) as client:
        r = client.get("/items/99?q=1", headers={"X-Case": "live"})
    (event,) = collector.wait_for_events(1)
    (info,) = seen
    assert info["path_params"] == {"item_id": "99"}
    assert info["state_user"] == "state-user"
    assert info["url"] == f"{server.url}/items/99?q=1"
    assert info["header"] == "live"
    assert info["client"] == "127.0.0.1"
    assert info["status"] == 200
    assert info["resp_type"] == "application/json"
    assert info["tid"] == r.headers["x-moesif-transaction-id"]
    assert info["body"] == r.content
    assert info["type"] == "Request"
    assert event["metadata"]["state_user"] == "state-user"
    if mode == "async":
        assert event["metadata"]["request_body"] == ""


def test_async_callback_reads_the_request_body(served: Callable[..., UvicornServer], collector: Any) -> None:
    async def identify_user(request: Request, response: Any) -> str:
        data = await request.json()
        return str(data["who"])

    server = served(IDENTIFY_USER=identify_user)
    with httpx.Client(base_url=server.url) as client:
        client.post("/echo", json={"who": "body-user"})
    (event,) = collector.wait_for_events(1)
    assert event["user_id"] == "body-user"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_raising_callbacks_leave_the_app_alone(
    mode: str, served: Callable[..., UvicornServer], collector: Any, moesif_log: pytest.LogCaptureFixture
) -> None:
    def boom(request: Any, response: Any) -> Any:
        raise RuntimeError("callback bug")

    async def aboom(request: Any, response: Any) -> Any:
        raise RuntimeError("callback bug")

    cb = boom if mode == "sync" else aboom
    server = served(SKIP=cb, IDENTIFY_USER=cb, IDENTIFY_COMPANY=cb, GET_SESSION_TOKEN=cb, GET_METADATA=cb)
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/echo", json={"a": 1}, headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert r.status_code == 200 and r.json() == {"len": len(b'{"a":1}')}
    (event,) = collector.wait_for_events(1)  # SKIP raised: not skipped
    assert event["user_id"] == "alice"  # IDENTIFY_USER raised: from the Authorization header
    assert event["company_id"] is None and event["session_token"] is None and event["metadata"] is None
    messages = [rec.getMessage() for rec in moesif_log.records]
    for name in ("SKIP", "IDENTIFY_USER", "IDENTIFY_COMPANY", "GET_SESSION_TOKEN", "GET_METADATA"):
        assert any(f"the {name} callback raised" in m for m in messages), name


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_raising_mask_event_model_sends_the_event_without_bodies(
    mode: str, served: Callable[..., UvicornServer], collector: Any
) -> None:
    def mask(event: Any) -> Any:
        if "secret" in event.request.uri:
            raise RuntimeError("mask bug")
        return event

    async def amask(event: Any) -> Any:
        return mask(event)

    server = served(MASK_EVENT_MODEL=mask if mode == "sync" else amask)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/items/secret").status_code == 200
        assert client.get("/items/public").status_code == 200
    events = collector.wait_for_events(2)
    secret = event_for(events, "/items/secret")
    assert secret["response"]["body"] is None and secret["metadata"] == {MASK_FAILED_METADATA_KEY: True}
    assert event_for(events, "/items/public")["response"]["body"] == {"item": "public"}


def test_skip_sees_the_response(served: Callable[..., UvicornServer], collector: Any) -> None:
    async def skip_404(request: Any, response: CallbackResponse) -> bool:
        return response.status_code == 404

    server = served(SKIP=skip_404)
    with httpx.Client(base_url=server.url) as client:
        client.get("/missing")
        client.get("/hello")
    events = collector.wait_for_events(1)
    assert [e["response"]["status"] for e in events] == [200]


def test_sync_callbacks_run_on_the_loop_thread_unless_marked(
    served: Callable[..., UvicornServer], collector: Any
) -> None:
    from moesifasgi import run_in_thread

    threads: Dict[str, str] = {}

    def identify_company(request: Any, response: Any) -> str:
        threads["inline"] = threading.current_thread().name
        return "c"

    @run_in_thread
    def get_session_token(request: Any, response: Any) -> str:
        threads["marked"] = threading.current_thread().name
        return "t"

    server = served(IDENTIFY_COMPANY=identify_company, GET_SESSION_TOKEN=get_session_token)
    with httpx.Client(base_url=server.url) as client:
        client.get("/hello")
    (event,) = collector.wait_for_events(1)
    assert event["company_id"] == "c" and event["session_token"] == "t"
    assert threads["inline"] == "uvicorn-test-server"  # the server's event loop thread
    assert threads["marked"] != "uvicorn-test-server"
