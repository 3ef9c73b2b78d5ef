"""A Django streaming response that is never read to the end nor closed is still recorded, once, when it is
collected: Django's test client closes a streaming response only once the test has read all of it."""

from __future__ import annotations

import gc
from typing import Any

from django.test import Client, override_settings
from djt_support import STACK, options

import moesifdjango


def test_unread_streaming_responses_are_recorded_when_collected(collector: Any) -> None:
    with override_settings(MOESIF_MIDDLEWARE=options(collector), MIDDLEWARE=STACK):
        client = Client()
        read = client.get("/stream")
        assert b"".join(read.streaming_content)  # read to the end: recorded then (and closed by the client)
        for _ in range(3):
            assert client.get("/stream").status_code == 200  # only the status: never read, never closed
        half = client.get("/stream")
        assert next(iter(half.streaming_content))  # a first chunk, then dropped
        del read, half
        gc.collect()
        assert moesifdjango.flush(5)
        events = collector.wait_for_events(5)
        assert [e["response"]["status"] for e in events] == [200] * 5
        assert len({e["transaction_id"] for e in events}) == 5
        gc.collect()
        assert moesifdjango.flush(5)
        assert collector.count_events() == 5  # once, never twice
