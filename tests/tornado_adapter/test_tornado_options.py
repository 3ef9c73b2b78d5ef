"""The README's options, with its own example callbacks, and what happens when a callback is broken."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
import requests
import tornado.web
from tornado_support import APP_ID, check_shape

from moesif_core import Settings
from moesiftornado import MoesifMiddleware
from moesiftornado import middleware as middleware_module


class MainHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"msg": "Hello, world"})

    def post(self) -> None:
        self.write({"ok": True})


# -- the README's example callbacks, verbatim in behaviour ------------------------------------------------------


def identify_user(handler: Any) -> str:
    return "my_user_id"


def identify_company(handler: Any) -> str:
    return "my_company_id"


def get_token(handler: Any) -> str:
    return "XXXXXXXXXXXXXX"


def should_skip(handler: Any) -> bool:
    return "health/probe" in handler.request.full_url()


def mask_event(event_model: Any) -> Any:
    if "password" in event_model.request.body:
        event_model.request.body["password"] = None
    return event_model


def get_metadata(handler: Any) -> dict[str, Any]:
    return {"datacenter": "westus", "deployment_version": "v1.2.3"}


def test_readme_example_options(collector: Any, serve: Any) -> None:
    moesif_config = {
        "APPLICATION_ID": APP_ID,
        "LOG_BODY": True,
        "DEBUG": False,
        "IDENTIFY_USER": identify_user,
        "IDENTIFY_COMPANY": identify_company,
        "GET_SESSION_TOKEN": get_token,
        "SKIP": should_skip,
        "MASK_EVENT_MODEL": mask_event,
        "GET_METADATA": get_metadata,
        "BASE_URI": collector.url,
        "EVENT_BATCH_TIMEOUT": 0.05,
    }
    middleware = MoesifMiddleware(moesif_config)
    application = tornado.web.Application(
        [(r"/", MainHandler), (r"/health/probe", MainHandler)], log_function=middleware.log_event
    )
    server = serve(application)
    assert requests.get(server.url + "/health/probe").status_code == 200
    r = requests.post(server.url + "/", json={"user": "u", "password": "hunter2"})
    assert r.status_code == 200
    middleware.flush(5)
    events = collector.wait_for_events(1)
    assert len(events) == 1, "the skipped probe must not be sent"
    (event,) = events
    check_shape(event)
    assert event["request"]["uri"] == server.url + "/"
    assert event["user_id"] == "my_user_id"
    assert event["company_id"] == "my_company_id"
    assert event["session_token"] == "XXXXXXXXXXXXXX"
    assert event["metadata"] == {"datacenter": "westus", "deployment_version": "v1.2.3"}
    assert event["request"]["body"] == {"user": "u", "password": None}
    assert event["response"]["body"] == {"ok": True}


def test_callbacks_get_the_live_handler(collector: Any, serve: Any, make_middleware: Any) -> None:
    seen: list[tuple[str, Any]] = []

    def remember(name: str, value: Any) -> Any:
        def callback(handler: Any) -> Any:
            assert isinstance(handler, tornado.web.RequestHandler)
            seen.append((name, handler.get_status()))
            return value(handler) if callable(value) else value

        return callback

    mw = make_middleware(
        SKIP=remember("SKIP", False),
        IDENTIFY_USER=remember("IDENTIFY_USER", lambda h: h.request.headers["X-User"]),
        IDENTIFY_COMPANY=remember("IDENTIFY_COMPANY", lambda h: h.get_query_argument("company")),
        GET_SESSION_TOKEN=remember("GET_SESSION_TOKEN", lambda h: h.get_cookie("session")),
        GET_METADATA=remember("GET_METADATA", lambda h: {"path": h.request.path, "status": h.get_status()}),
        GET_API_VERSION=remember("GET_API_VERSION", lambda h: h.request.headers.get("X-Api-Version")),
    )
    server = serve(tornado.web.Application([(r"/", MainHandler)], log_function=mw.log_event))
    requests.get(
        server.url + "/?company=acme", headers={"X-User": "bob", "X-Api-Version": "2.1"}, cookies={"session": "s-1"}
    )
    (event,) = collector.wait_for_events(1)
    assert event["user_id"] == "bob"
    assert event["company_id"] == "acme"
    assert event["session_token"] == "s-1"
    assert event["metadata"] == {"path": "/", "status": 200}
    assert event["request"]["api_version"] == "2.1"
    assert {name for name, _ in seen} == {
        "SKIP",
        "IDENTIFY_USER",
        "IDENTIFY_COMPANY",
        "GET_SESSION_TOKEN",
        "GET_METADATA",
        "GET_API_VERSION",
    }
    assert all(status == 200 for _, status in seen)


def test_broken_callbacks_never_break_logging(
    collector: Any, serve: Any, make_middleware: Any, moesif_log: pytest.LogCaptureFixture
) -> None:
    def broken(handler: Any) -> Any:
        raise RuntimeError("user bug")

    moesif_log.set_level(logging.INFO, logger="tornado.access")
    mw = make_middleware(
        SKIP=broken,
        IDENTIFY_USER=broken,
        IDENTIFY_COMPANY=broken,
        GET_SESSION_TOKEN=broken,
        GET_METADATA=broken,
        GET_API_VERSION=broken,
    )
    server = serve(tornado.web.Application([(r"/", MainHandler)], log_function=mw.log_event))
    r = requests.get(server.url + "/", auth=("alice", "pw"))
    assert r.status_code == 200 and r.json() == {"msg": "Hello, world"}
    (event,) = collector.wait_for_events(1)
    check_shape(event)
    assert event["user_id"] == "alice"  # the authorization header still identifies the user
    assert event["company_id"] is None and event["session_token"] is None and event["metadata"] is None
    assert event["request"]["api_version"] is None
    assert event["response"]["body"] == {"msg": "Hello, world"}
    messages = [rec.getMessage() for rec in moesif_log.records if rec.name == "moesif"]
    for name in ("SKIP", "IDENTIFY_USER", "IDENTIFY_COMPANY", "GET_SESSION_TOKEN", "GET_METADATA"):
        assert any(name in m for m in messages), name
    assert any(rec.name == "tornado.access" for rec in moesif_log.records)


def test_callbacks_returning_wrong_types(collector: Any, serve: Any, make_middleware: Any) -> None:
    mw = make_middleware(
        IDENTIFY_USER=lambda h: {"not": "an id"},
        IDENTIFY_COMPANY=lambda h: 42,
        GET_METADATA=lambda h: ["not", "a", "dict"],
        SKIP=lambda h: None,
    )
    server = serve(tornado.web.Application([(r"/", MainHandler)], log_function=mw.log_event))
    requests.get(server.url + "/")
    (event,) = collector.wait_for_events(1)
    assert event["user_id"] is None
    assert event["company_id"] == "42"
    assert event["metadata"] is None


def test_broken_mask_sends_the_event_without_bodies(
    collector: Any, serve: Any, make_middleware: Any, moesif_log: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def mask(event_model: Any) -> Any:
        calls.append(event_model.request.uri)
        if event_model.request.uri.endswith("/bad"):
            raise RuntimeError("mask bug")
        return event_model

    mw = make_middleware(MASK_EVENT_MODEL=mask)
    server = serve(tornado.web.Application([(r"/(?:bad|good)", MainHandler)], log_function=mw.log_event))
    assert requests.get(server.url + "/bad").status_code == 200
    assert requests.get(server.url + "/good").status_code == 200
    mw.flush(5)
    events = {e["request"]["uri"]: e for e in collector.wait_for_events(2)}
    # a raising MASK_EVENT_MODEL may have failed to remove what it was meant to: that event goes without bodies
    bad, good = events[server.url + "/bad"], events[server.url + "/good"]
    assert bad["metadata"] == {"moesif_mask_failed": True} and bad["response"]["body"] is None
    assert good["response"]["body"] is not None and good["metadata"] is None
    assert len(calls) == 2
    assert any("MASK_EVENT_MODEL raised" in rec.getMessage() for rec in moesif_log.records)


def test_access_log_is_what_tornado_writes_by_default(
    collector: Any, serve: Any, make_middleware: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Boom(tornado.web.RequestHandler):
        def get(self) -> None:
            raise RuntimeError("boom")

    caplog.set_level(logging.INFO, logger="tornado.access")
    handlers = [(r"/", MainHandler), (r"/boom", Boom)]
    mw = make_middleware()
    ours = serve(tornado.web.Application(handlers, log_function=mw.log_event))
    default = serve(tornado.web.Application(handlers))

    def lines(url: str) -> list[tuple[int, str]]:
        caplog.clear()
        for path in ("/", "/nowhere", "/boom"):
            requests.get(url + path)
        # Tornado logs right after handing the response to the connection: the client may see it first
        deadline = time.monotonic() + 10
        while True:
            records = [rec for rec in caplog.records if rec.name == "tornado.access"]
            if len(records) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        return [(rec.levelno, re.sub(r"\d+\.\d\dms$", "<ms>", rec.getMessage())) for rec in records]

    expected = [
        (logging.INFO, "200 GET / (127.0.0.1) <ms>"),
        (logging.WARNING, "404 GET /nowhere (127.0.0.1) <ms>"),
        (logging.ERROR, "500 GET /boom (127.0.0.1) <ms>"),
    ]
    assert lines(default.url) == expected
    assert lines(ours.url) == expected
    collector.wait_for_events(3)


def test_settings(collector: Any) -> None:
    assert middleware_module.MoesifMiddleware is MoesifMiddleware  # the original's module path
    # the defaults, read without starting an agent (whose default BASE_URI is the real Moesif API)
    defaults = Settings.from_mapping({"APPLICATION_ID": APP_ID}, defaults=middleware_module.TORNADO_DEFAULTS)
    assert defaults.batch_size == 25  # the original's default
    assert defaults.event_batch_timeout == 2  # the original sent a batch every 2 s
    assert defaults.base_uri == "https://api.moesif.net"
    assert defaults.log_body is True and defaults.debug is False

    mw = MoesifMiddleware({"APPLICATION_ID": APP_ID, "BASE_URI": collector.url})
    try:
        assert mw.settings.batch_size == 25 and mw.BATCH_SIZE == 25
        assert mw.LOG_BODY is True and mw.DEBUG is False
        assert mw.moesif_config == {"APPLICATION_ID": APP_ID, "BASE_URI": collector.url}
    finally:
        mw.shutdown(0)

    moesif_logger = logging.getLogger("moesif")
    saved = moesif_logger.level, list(moesif_logger.handlers)
    mw = MoesifMiddleware(
        {
            "APPLICATION_ID": APP_ID,
            "BATCH_SIZE": 5,
            "LOCAL_MOESIF_BASEURL": collector.url + "/",
            "DEBUG": True,
            "LOG_BODY": False,
        }
    )
    try:
        assert mw.settings.batch_size == 5
        assert mw.settings.base_uri == collector.url
        assert mw.client.base_uri == collector.url
        assert mw.DEBUG is True and mw.LOG_BODY is False
    finally:
        mw.shutdown(0)
        moesif_logger.setLevel(saved[0])  # DEBUG turned the shared logger up: put it back for the other tests
        moesif_logger.handlers[:] = saved[1]

    with pytest.raises(ValueError, match="APPLICATION_ID"):
        MoesifMiddleware(None)
    with pytest.raises(ValueError, match="APPLICATION_ID"):
        MoesifMiddleware({"LOG_BODY": True})
    with pytest.raises(ValueError, match="Did you mean 'IDENTIFY_USER'"):
        MoesifMiddleware({"APPLICATION_ID": APP_ID, "IDENTIFY_USR": identify_user})
    with pytest.raises(TypeError, match="SKIP"):
        MoesifMiddleware({"APPLICATION_ID": APP_ID, "SKIP": True})


def test_base_uri_is_honoured_without_debug(collector: Any, serve: Any) -> None:
    mw = MoesifMiddleware({"APPLICATION_ID": APP_ID, "BASE_URI": collector.url, "DEBUG": False})
    try:
        server = serve(tornado.web.Application([(r"/", MainHandler)], log_function=mw.log_event))
        requests.get(server.url + "/")
        assert mw.flush(5)
        assert len(collector.wait_for_events(1)) == 1
    finally:
        mw.shutdown(1)
