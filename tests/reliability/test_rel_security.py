"""Security, end to end through moesifwsgi (Flask, werkzeug, the real collector): masks reach every copy of a value
(any case, any depth, inside arrays, headers both ways), the APPLICATION_ID never appears in a log record, and debug
logging never prints bodies. Plus one core defect found by the fuzz tests, pinned here deterministically."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any, Iterator

import pytest
import requests
from rel_support import served, settings_for, wait_until

SECRET_APP_ID = "rel-app-id-0f9d3c1e7b"


@pytest.fixture
def restore_moesif_logger() -> Iterator[None]:
    """``DEBUG: True`` sets up the ``moesif`` logger; put it back for the tests that follow."""
    log = logging.getLogger("moesif")
    level, handlers = log.level, list(log.handlers)
    yield
    log.setLevel(level)
    log.handlers[:] = handlers


def test_masks_apply_to_every_copy(collector: Any) -> None:
    settings = settings_for(
        collector.url,
        REQUEST_HEADER_MASKS=["x-api-key", "Authorization"],
        RESPONSE_HEADER_MASKS=["x-resp-secret"],
        REQUEST_BODY_MASKS=["password"],
        RESPONSE_BODY_MASKS=["TOKEN"],
    )
    body = {
        "PassWord": "SEKRET-B1",
        "nested": {"PASSWORD": "SEKRET-B2", "list": [{"password": "SEKRET-B3"}, [{"Password": "SEKRET-B4"}]]},
        "keep": "visible",
    }
    with served("wsgi", settings) as app:
        r = requests.post(
            app.url + "/echo",
            json=body,
            timeout=10,
            headers={"X-API-KEY": "SEKRET-H1", "authorization": "Bearer SEKRET-H2"},
        )
        assert r.status_code == 200 and r.json()["Token"] == "SEKRET-R1"  # the client still gets everything
        assert app.agent.flush(10)
    event = collector.wait_for_events(1)[0]
    wire = json.dumps(event)
    assert "SEKRET" not in wire, wire
    req, resp = event["request"], event["response"]
    # masks remove what they name (as the originals did), in any case, at any depth
    assert not {"x-api-key", "authorization"} & {k.lower() for k in req["headers"]}
    assert "x-resp-secret" not in {k.lower() for k in resp["headers"]}
    assert req["body"] == {"nested": {"list": [{}, [{}]]}, "keep": "visible"}
    assert "Token" not in resp["body"] and resp["body"]["data"] == [{}, [{}]]


def _all_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), str(record.args), record.name]
    if record.exc_info:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


def test_app_id_and_bodies_never_logged(
    collector: Any, caplog: pytest.LogCaptureFixture, restore_moesif_logger: None
) -> None:
    caplog.set_level(logging.DEBUG)
    collector.set_faults("error500", times=2)  # failures and retries get logged too
    settings = settings_for(
        collector.url, APPLICATION_ID=SECRET_APP_ID, DEBUG=True, BATCH_SIZE=2, REQUEST_BODY_MASKS=["nothing"]
    )
    with served("wsgi", settings) as app:
        for i in range(4):
            r = requests.post(
                app.url + "/echo",
                data=json.dumps({"marker": f"BODYMARK-REQ-{i}"}),
                timeout=10,
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 200
        requests.post(app.url + "/echo", data=b"\xffBODYMARK-RAW", timeout=10)
        wait_until(lambda: collector.count_events() == 5, timeout=20, what="all events")
        assert app.agent.snapshot()["retried"] >= 1
    assert any(r.levelno == logging.DEBUG and r.name == "moesif" for r in caplog.records)  # debug output is on
    for record in caplog.records:
        text = _all_text(record)
        assert SECRET_APP_ID not in text, (record.name, text)
        assert "BODYMARK" not in text and "SEKRET" not in text, (record.name, text)


LONE_SURROGATE_JWT = "Bearer e30.eyJzdWIiOiAiXHVkODAwIn0.c2ln"  # payload {"sub": "\\ud800"}


@pytest.mark.parametrize("where", ["json_body", "jwt_sub"])
def test_an_escaped_lone_surrogate_does_not_lose_the_event(collector: Any, where: str) -> None:
    """BUG (found by test_rel_fuzz): ``"\\ud800"`` is valid JSON (RFC 8259 grammar). orjson refuses it, the stdlib
    fallback in ``moesif_core.jsoncodec.loads`` accepts it and returns a str holding a lone surrogate; the event then
    cannot be serialised (``jsoncodec._std_dumps`` encodes UTF-8 strictly), so ``Agent._serialise`` drops the whole
    event and counts it failed. Through the body (``{"a": "\\ud800"}`` with a JSON content type) or through a JWT
    whose ``sub`` is that string (so any client can make its own calls vanish from monitoring), the call is lost.
    Expected: the event is sent (the body as base64 / the user id without the lone surrogate)."""
    headers = {"Content-Type": "application/json"}
    data = b'{"a": "\\ud800"}' if where == "json_body" else b"{}"
    if where == "jwt_sub":
        headers["Authorization"] = LONE_SURROGATE_JWT
    with served("wsgi", settings_for(collector.url)) as app:
        r = requests.post(app.url + "/echo", data=data, timeout=10, headers=headers)
        assert r.status_code == 200
        # the server ends the call (and queues its capture) just after the client has its last byte
        wait_until(lambda: app.agent.snapshot()["queued"] >= 1, what="the capture to be queued")
        app.agent.flush(10)
        snap = app.agent.snapshot()
    assert snap["failed"] == 0, snap
    assert collector.count_events() == 1
