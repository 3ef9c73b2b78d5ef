"""The first config: fetched when the agent is built, and what happens when it is slow, hung or unreachable."""

from __future__ import annotations

import time
from typing import Any

from moesif_core import Agent, RawCapture, Settings


def agent(base_uri: str) -> Agent:
    settings = Settings.from_mapping({"APPLICATION_ID": "s", "BASE_URI": base_uri, "EVENT_BATCH_TIMEOUT": 0.05})
    return Agent(settings, user_agent="t/1")


def capture(a: Agent, i: int = 0) -> None:
    a.capture(
        RawCapture(method="GET", uri=f"http://app.local/items/{i}", request_time=time.time(), response_status=200)
    )


def test_fetched_when_built_without_any_request(collector: Any) -> None:
    collector.set_config({"sample_rate": 20})
    a = agent(collector.url)
    try:
        assert a.wait_for_config(5)
        assert a.remote.current()[0].sample_rate == 20 and a.remote.fetches == 1
        assert a.snapshot()["queued"] == 0
    finally:
        a.shutdown(1)


def test_unreachable_collector_gives_the_default_at_once() -> None:
    a = agent("http://127.0.0.1:9")  # nothing listens on the discard port
    try:
        assert a.wait_for_config(5)
        config, rules = a.remote.current()
        assert config.known and config.samples_everything and rules == ()
    finally:
        a.shutdown(0)


def test_a_hung_config_fetch_holds_the_first_batch_only_for_a_bounded_time(collector: Any) -> None:
    collector.set_config({"sample_rate": 0})
    collector.set_faults("hang", scope="all", times=1)  # GET /v1/config hangs; the batch POST goes through
    a = agent(collector.url)
    try:
        assert not a.wait_for_config(0.2)
        capture(a)
        assert a.flush(10)  # the worker gave up waiting for the config: the call is kept, unweighted
        (event,) = collector.events()
        assert event["weight"] == 1
        assert not a.remote.known  # the fetch is still hung: nothing has been decided about the config
    finally:
        collector.reset_faults()
        a.shutdown(1)
