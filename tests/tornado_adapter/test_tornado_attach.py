"""How the response tap gets into an application: at construction, late, explicitly; and never elsewhere."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests
import tornado.web
from tornado_support import UUID_RE

from moesiftornado import middleware as middleware_module


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(b"hello")


def taps(app: tornado.web.Application) -> list[Any]:
    return [t for t in app.transforms if isinstance(t, type) and issubclass(t, middleware_module.ResponseTap)]


def test_constructed_with_log_event_gets_the_tap_first(make_middleware: Any) -> None:
    mw = make_middleware()
    app = tornado.web.Application([(r"/", Hello)], log_function=mw.log_event, compress_response=True)
    assert app.transforms[0] is mw._tap_class
    assert app.transforms[1:] == [tornado.web.GZipContentEncoding]
    mw.attach(app)  # idempotent
    assert taps(app) == [mw._tap_class]


def test_other_applications_are_left_alone(make_middleware: Any) -> None:
    make_middleware()
    shared: list[type[tornado.web.OutputTransform]] = [tornado.web.GZipContentEncoding]
    plain = tornado.web.Application([(r"/", Hello)], transforms=shared)
    with_own_logger = tornado.web.Application([(r"/", Hello)], log_function=lambda handler: None)
    assert plain.transforms == [tornado.web.GZipContentEncoding] and plain.transforms is shared
    assert with_own_logger.transforms == []


def test_users_transforms_list_is_not_mutated(make_middleware: Any) -> None:
    mw = make_middleware()
    shared: list[type[tornado.web.OutputTransform]] = [tornado.web.GZipContentEncoding]
    a = tornado.web.Application([(r"/", Hello)], transforms=shared, log_function=mw.log_event)
    b = tornado.web.Application([(r"/", Hello)], transforms=shared, log_function=mw.log_event)
    assert shared == [tornado.web.GZipContentEncoding]
    assert a.transforms == b.transforms == [mw._tap_class, tornado.web.GZipContentEncoding]


def test_two_middlewares_two_applications(collector: Any, serve: Any, make_middleware: Any) -> None:
    one = make_middleware(GET_METADATA=lambda h: {"app": "one"})
    two = make_middleware(GET_METADATA=lambda h: {"app": "two"}, DISABLED_TRANSACTION_ID=True)
    s1 = serve(tornado.web.Application([(r"/", Hello)], log_function=one.log_event))
    s2 = serve(tornado.web.Application([(r"/", Hello)], log_function=two.log_event))
    r1 = requests.get(s1.url + "/")
    r2 = requests.get(s2.url + "/")
    assert UUID_RE.match(r1.headers["X-Moesif-Transaction-Id"])
    assert "X-Moesif-Transaction-Id" not in r2.headers
    events = collector.wait_for_events(2)
    by_app = {e["metadata"]["app"]: e for e in events}
    assert base64.b64decode(by_app["one"]["response"]["body"]) == b"hello"
    assert base64.b64decode(by_app["two"]["response"]["body"]) == b"hello"
    assert UUID_RE.match(by_app["two"]["transaction_id"])
    assert "X-Moesif-Transaction-Id" not in by_app["two"]["request"]["headers"]


def test_log_function_set_after_construction(
    collector: Any, serve: Any, make_middleware: Any, moesif_log: pytest.LogCaptureFixture
) -> None:
    mw = make_middleware()
    app = tornado.web.Application([(r"/", Hello)])
    app.settings["log_function"] = mw.log_event
    server = serve(app)
    first = requests.get(server.url + "/")
    second = requests.get(server.url + "/")
    assert "X-Moesif-Transaction-Id" not in first.headers  # the tap arrived with the first logged request
    one, two = collector.wait_for_events(2)
    assert one["response"]["body"] is None and UUID_RE.match(one["transaction_id"])
    assert one["response"]["status"] == 200 and one["request"]["uri"] == server.url + "/"
    assert base64.b64decode(two["response"]["body"]) == b"hello"
    assert two["transaction_id"] == second.headers["X-Moesif-Transaction-Id"]
    assert sum("attached to a Tornado Application" in r.getMessage() for r in moesif_log.records) == 1


def test_explicit_attach_and_a_wrapping_log_function(collector: Any, serve: Any, make_middleware: Any) -> None:
    mw = make_middleware()
    mine: list[int] = []

    def log_both(handler: tornado.web.RequestHandler) -> None:
        mine.append(handler.get_status())
        mw.log_event(handler)

    app = tornado.web.Application([(r"/", Hello)], log_function=log_both)
    mw.attach(app)
    server = serve(app)
    r = requests.get(server.url + "/")
    (event,) = collector.wait_for_events(1)
    assert mine == [200]
    assert base64.b64decode(event["response"]["body"]) == b"hello"
    assert event["transaction_id"] == r.headers["X-Moesif-Transaction-Id"]


def test_application_subclass(collector: Any, serve: Any, make_middleware: Any) -> None:
    class MyApp(tornado.web.Application):
        def __init__(self, log_function: Any) -> None:
            super().__init__([(r"/", Hello)], log_function=log_function)

    mw = make_middleware()
    app = MyApp(mw.log_event)
    assert app.transforms[0] is mw._tap_class
    server = serve(app)
    requests.get(server.url + "/")
    (event,) = collector.wait_for_events(1)
    assert base64.b64decode(event["response"]["body"]) == b"hello"


def test_the_hook_is_installed_once(make_middleware: Any) -> None:
    make_middleware()
    init = tornado.web.Application.__init__
    make_middleware()
    assert tornado.web.Application.__init__ is init
    assert init.__wrapped__ is not None  # type: ignore[attr-defined]
