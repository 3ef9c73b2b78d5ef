"""Starting and stopping outgoing capture: once per process, exact restore, several adapters, no blocking."""

from __future__ import annotations

import functools
import time
from typing import Any

import httpx
import pytest
import requests
from outgoing_helpers import ORIGINALS, Capture, ThirdPartyAPI, assert_unpatched

import moesifpythonrequest
from moesif_core import Agent, Settings
from moesifpythonrequest.start_capture.start_capture import StartCapture


def test_start_twice_is_one_event_per_call(capture: Capture, api: ThirdPartyAPI) -> None:
    capture.start()
    assert StartCapture().start_capture_outgoing(capture.options()) is False
    assert moesifpythonrequest.start(capture.options()) is False
    requests.get(api.url("/json?once"))
    httpx.get(api.url("/json?once-httpx"))
    assert len(capture.events(2)) == 2


def test_stop_restores_exactly_and_is_idempotent(capture: Capture, api: ThirdPartyAPI) -> None:
    capture.start()
    assert requests.Session.send is not ORIGINALS[(requests.Session, "send")]
    assert moesifpythonrequest.is_active()
    assert StartCapture().stop_capture_outgoing(timeout=2) is True
    assert_unpatched()
    assert not moesifpythonrequest.is_active() and moesifpythonrequest.get_agent() is None
    assert StartCapture().stop_capture_outgoing() is False
    requests.get(api.url("/json?after-stop"))
    assert capture.collector.count_events() == 0


def test_start_again_after_stop(capture: Capture, api: ThirdPartyAPI) -> None:
    capture.start()
    moesifpythonrequest.stop(timeout=2)
    capture.start()
    requests.get(api.url("/json?again"))
    assert capture.events(1)[0]["request"]["uri"] == api.url("/json?again")


def test_two_adapters_one_process_one_event_per_call(collector: Any, api: ThirdPartyAPI) -> None:
    # Two middlewares with their own agents and CAPTURE_OUTGOING_REQUESTS on: the first one wins.
    agents = []
    for name in ("wsgi-app", "asgi-app"):
        settings = Settings.from_mapping(
            {
                "APPLICATION_ID": name,
                "BASE_URI": collector.url,
                "EVENT_BATCH_TIMEOUT": 0.05,
                "CAPTURE_OUTGOING_REQUESTS": True,
            }
        )
        agent = Agent(settings, user_agent=f"{name}/test")
        agents.append(agent)
        moesifpythonrequest.start(settings, agent)
    assert moesifpythonrequest.get_agent() is agents[0]
    for i in range(3):
        requests.get(api.url(f"/json?call={i}"))
    collector.wait_for_events(3, timeout=10)
    for agent in agents:
        assert agent.flush(5)
    events = collector.events()
    assert len(events) == 3
    moesifpythonrequest.stop(timeout=0)
    for agent in agents:  # adapters' agents are theirs: stop leaves them to the adapters
        agent.shutdown(2)


def test_adapter_agent_alone(collector: Any, api: ThirdPartyAPI) -> None:
    settings = Settings.from_mapping(
        {
            "APPLICATION_ID": "x",
            "BASE_URI": collector.url,
            "EVENT_BATCH_TIMEOUT": 0.05,
            "GET_METADATA_OUTGOING": lambda req, res: {"via": "agent"},
        }
    )
    agent = Agent(settings, user_agent="adapter/test")
    try:
        assert moesifpythonrequest.start(agent=agent) is True
        requests.get(api.url("/json"))
        assert collector.wait_for_events(1)[0]["metadata"] == {"via": "agent"}
    finally:
        moesifpythonrequest.stop(timeout=0)
        agent.shutdown(2)


def test_start_never_blocks_on_a_dead_collector(api: ThirdPartyAPI, closed_port: int) -> None:
    t0 = time.monotonic()
    StartCapture().start_capture_outgoing({"APPLICATION_ID": "x", "BASE_URI": f"http://127.0.0.1:{closed_port}"})
    assert time.monotonic() - t0 < 1
    assert requests.get(api.url("/json")).status_code == 200  # the user's calls are not affected
    moesifpythonrequest.stop(timeout=0)


def test_invalid_options_raise_and_patch_nothing() -> None:
    with pytest.raises(ValueError, match="APPLICATION_ID"):
        StartCapture().start_capture_outgoing({"SKIP_OUTGOING": lambda req, res: False})
    with pytest.raises(TypeError, match="IDENTIFY_USER_OUTGOING"):
        moesifpythonrequest.start({"APPLICATION_ID": "x", "IDENTIFY_USER_OUTGOING": "not a function"})
    assert_unpatched()
    assert not moesifpythonrequest.is_active()


def test_a_wrapper_added_after_ours_survives_stop(capture: Capture, api: ThirdPartyAPI) -> None:
    capture.start()
    ours = requests.Session.send
    seen: list[str] = []

    @functools.wraps(ours)
    def theirs(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        if (request.url or "").startswith(api.url()):  # not the agent's own config fetches
            seen.append(request.url or "")
        return ours(self, request, **kwargs)

    requests.Session.send = theirs  # type: ignore[method-assign]
    try:
        moesifpythonrequest.stop(timeout=2)
        assert requests.Session.send is theirs  # theirs is not removed; ours passes through inside it
        requests.get(api.url("/json?stopped"))
        assert seen == [api.url("/json?stopped")]
        capture.start()  # ours is reused, not wrapped a second time
        requests.get(api.url("/json?restarted"))
        assert [e["request"]["uri"] for e in capture.events(1)] == [api.url("/json?restarted")]
        moesifpythonrequest.stop(timeout=2)
    finally:
        requests.Session.send = ours  # type: ignore[method-assign]
    moesifpythonrequest.stop(timeout=0)
    # with theirs gone, ours is on top again and a stop restores the original exactly
    capture.start()
    moesifpythonrequest.stop(timeout=2)
    assert_unpatched()


def test_original_option_spellings(collector: Any, api: ThirdPartyAPI) -> None:
    # the original honoured LOCAL_MOESIF_BASEURL only with LOCAL_DEBUG; the alias works here either way
    StartCapture().start_capture_outgoing(
        {"APPLICATION_ID": "x", "LOCAL_MOESIF_BASEURL": collector.url + "/", "EVENT_BATCH_TIMEOUT": 0.05}
    )
    requests.get(api.url("/json?alias"))
    assert collector.wait_for_events(1)[0]["request"]["uri"] == api.url("/json?alias")
    StartCapture().stop_capture_outgoing(timeout=2)


def test_a_start_takes_over_from_a_shut_down_adapter_agent(collector: Any, api: ThirdPartyAPI) -> None:
    # e.g. a test suite that tears a middleware (and its agent) down and builds a new one
    settings = Settings.from_mapping({"APPLICATION_ID": "x", "BASE_URI": collector.url, "EVENT_BATCH_TIMEOUT": 0.05})
    old, new = Agent(settings, user_agent="old/test"), Agent(settings, user_agent="new/test")
    try:
        assert moesifpythonrequest.start(settings, old) is True
        old.shutdown(2)
        assert moesifpythonrequest.start(settings, new) is True
        assert moesifpythonrequest.get_agent() is new
        requests.get(api.url("/json?taken-over"))
        assert collector.wait_for_events(1)[0]["request"]["uri"] == api.url("/json?taken-over")
    finally:
        moesifpythonrequest.stop(timeout=0)
        new.shutdown(2)
