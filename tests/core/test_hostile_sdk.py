"""What hostile input and careless settings can do to the SDK (issue 18, items 7-9): big integers arrive exact,
secrets stay out of logs and error messages, a configured regex cannot stall requests."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests

from moesif_collector import Collector
from moesif_core.jsoncodec import dumps, loads
from moesif_core.saferegex import MAX_MATCHED_CHARS, compile_bounded, search_bounded
from moesif_core.settings import Settings

BIG = 18446744073709551616  # 2^64: one past what orjson keeps exact


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(app: Any) -> Iterator[str]:
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


# -- 7. big integers --------------------------------------------------------------------------------------------------


def test_big_integers_are_shipped_exactly_end_to_end(collector: Collector) -> None:
    from moesifwsgi import MoesifMiddleware

    mw = MoesifMiddleware(echo_app, {"APPLICATION_ID": "big", "BASE_URI": collector.url, "EVENT_BATCH_TIMEOUT": 0.05})
    raw = b'{"id": 18446744073709551616, "low": -9223372036854775809, "ok": 18446744073709551615}'
    try:
        for url in serve(mw):
            reply = requests.post(url + "/items", data=raw, headers={"Content-Type": "application/json"}, timeout=10)
            assert reply.content == raw
        assert mw.agent.flush(10)
        (event,) = collector.wait_for_events(1)
    finally:
        mw.agent.shutdown(1)
    for side in ("request", "response"):
        assert event[side]["transfer_encoding"] == "json"
        body = event[side]["body"]
        assert body == {"id": BIG, "low": -(2**63) - 1, "ok": 2**64 - 1}
        assert all(isinstance(v, int) for v in body.values()), body


def test_codec_round_trips_big_integers() -> None:
    for number in (BIG, -(2**63) - 1, 10**40, -(10**40)):
        doc = json.dumps({"n": number, "list": [number]}).encode()
        parsed = loads(doc)
        assert parsed == {"n": number, "list": [number]} and isinstance(parsed["n"], int)
        assert json.loads(dumps(parsed)) == parsed
    assert loads(b'{"price": 1.5, "id": 42}') == {"price": 1.5, "id": 42}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": "\\ud800", "n": 1}',
        b'{"a": "\xed\xa0\x80", "n": 1}',
        b'{"a": "\xed\xa0\x80", "n": 10000000000000000000}',
    ],
)
def test_lone_surrogates_are_not_json_in_any_spelling(raw: bytes) -> None:
    """Found by ``nox -s fuzz``: a surrogate as raw bytes (not UTF-8, but the standard library takes it) slipped past
    the escape check, and the event then failed to serialise; now the body is treated as not JSON (sent as base64)."""
    with pytest.raises(ValueError, match="lone surrogate"):
        loads(raw)


# -- 8. secrets in logs -----------------------------------------------------------------------------------------------


def test_ready_line_hides_base_uri_credentials(moesif_log: pytest.LogCaptureFixture) -> None:
    from moesifwsgi import MoesifMiddleware

    mw = MoesifMiddleware(
        echo_app, {"APPLICATION_ID": "s", "BASE_URI": "http://user:password@127.0.0.1:9", "DEBUG": True}
    )
    mw.agent.shutdown(0)
    ready = [r.getMessage() for r in moesif_log.records if "ready" in r.getMessage()]
    assert ready, moesif_log.text
    assert "base_uri='http://***@127.0.0.1:9'" in ready[0]
    assert "password" not in moesif_log.text and "user:" not in moesif_log.text


@pytest.mark.parametrize(
    "settings",
    [
        {"APPLICATION_ID": b"app-id-SECRET-from-environb"},  # what os.environb gives
        {"APPLICATION_ID": "x", "BASE_URI": b"http://u:SECRET@h"},
        {"APPLICATION_ID": "x", "BASE_URI": "ftp://u:SECRET@h"},
    ],
)
def test_wrong_settings_do_not_echo_secrets(settings: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        Settings.from_mapping(settings)
    message = str(caught.value)
    assert "SECRET" not in message
    assert ("APPLICATION_ID" in message and "bytes of length 27" in message) or "BASE_URI" in message


# -- 9. regexes from the config server --------------------------------------------------------------------------------

CATASTROPHIC = r"^/(a+)+$"


@pytest.mark.parametrize("source", [CATASTROPHIC, r"(\w*/)*x", r"(?:a|b+)+c", r"(x{1,3})+y", r"((ab)*c)*d"])
def test_nested_quantifiers_are_refused(source: str) -> None:
    with pytest.raises(ValueError, match="exponential"):
        compile_bounded(source)


@pytest.mark.parametrize(
    "source", [r"^/api/.*/users/\d+$", r"(\d{1,3}\.){3}\d{1,3}", r"^(GET|POST)$", r"(ab)+", r"a{2}"]
)
def test_ordinary_rules_compile(source: str) -> None:
    assert compile_bounded(source).pattern == source


def test_matching_sees_the_first_characters_only() -> None:
    long_path = "/admin/" + "x" * 5000 + ".php"
    assert search_bounded(re.compile(r"^/admin"), long_path)
    assert not search_bounded(re.compile(r"\.php$"), long_path)
    assert search_bounded(re.compile(r"\.php$"), "/short.php")
    assert MAX_MATCHED_CHARS == 1024


def test_a_catastrophic_rule_from_the_config_server_is_skipped(
    collector: Collector, moesif_log: pytest.LogCaptureFixture
) -> None:
    """A governance rule and a sampling entry with ``^/(a+)+$``, from the real collector: both are skipped with a
    warning and a request to ``/aaaa...!`` is answered by the app (unbounded, it would take years)."""
    from moesifwsgi import MoesifMiddleware

    block = {"status": 403, "headers": {}, "body": {"blocked": True}}
    condition = [{"path": "request.route", "value": CATASTROPHIC}]
    collector.set_rules(
        [{"_id": "r1", "type": "regex", "block": True, "regex_config": [{"conditions": condition}], "response": block}]
    )
    collector.set_config({"sample_rate": 100, "regex_config": [{"conditions": condition, "sample_rate": 0}]})
    mw = MoesifMiddleware(echo_app, {"APPLICATION_ID": "re", "BASE_URI": collector.url, "EVENT_BATCH_TIMEOUT": 0.05})
    try:
        mw.agent.start()
        deadline = time.monotonic() + 10
        while mw.agent.remote.fetches < 1:
            assert time.monotonic() < deadline, "config never fetched"
            time.sleep(0.01)
        for url in serve(mw):
            reply = requests.post(url + "/" + "a" * 40 + "!", data=b"{}", timeout=30)
            assert reply.status_code == 200 and reply.content == b"{}"
        assert mw.agent.flush(10)
        assert len(collector.wait_for_events(1)) == 1  # not sampled out by the skipped entry
    finally:
        mw.agent.shutdown(1)
    warnings = [r.getMessage() for r in moesif_log.records if r.levelno == logging.WARNING]
    assert any("regex_config[0] ignored" in w and "exponential" in w for w in warnings), warnings
    assert any("governance rule ignored" in w and "exponential" in w for w in warnings), warnings
