"""A response the server never closes and never reads to the end is still recorded, once, when the middleware's
wrapper is collected: here Flask's test client, whose responses are only consumed when the test reads them."""

from __future__ import annotations

import gc
from collections import Counter
from typing import Any, List

from flask import Flask, abort
from wsgi_support import settings_for

from moesifwsgi import MoesifMiddleware


def test_unread_responses_are_recorded_when_collected(collector: Any) -> None:
    app = Flask("abandoned")

    @app.get("/ok")
    def ok() -> Any:
        return {"ok": True}

    @app.get("/bad")
    def bad() -> Any:
        abort(400)

    users: List[str] = []

    def identify_user(app: Any, environ: Any, response_headers: Any = None) -> str:
        users.append(environ["PATH_INFO"])
        return "u-" + environ["PATH_INFO"].strip("/")

    mw = MoesifMiddleware(app.wsgi_app, settings_for(collector, IDENTIFY_USER=identify_user))
    app.wsgi_app = mw  # type: ignore[method-assign]
    client = app.test_client()
    for _ in range(5):
        assert client.get("/ok").json == {"ok": True}  # read: finished at its last chunk
        assert client.get("/bad").status_code == 400  # only the status: never read, never closed
        assert client.get("/missing").status_code == 404
    gc.collect()
    assert mw.flush(10)
    events = collector.wait_for_events(15)
    assert Counter(e["response"]["status"] for e in events) == {200: 5, 400: 5, 404: 5}
    assert {e["user_id"] for e in events} == {"u-ok", "u-bad", "u-missing"}  # the callbacks ran for each
    assert len({e["transaction_id"] for e in events}) == 15
    gc.collect()
    assert mw.flush(10)
    assert collector.count_events() == 15 and len(users) == 15  # once, never twice
    mw.shutdown(2)
