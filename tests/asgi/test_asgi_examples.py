"""The examples run as documented (``python examples/fastapi_app.py``) and their calls reach the collector."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_support import WAIT, event_for
from websockets.sync.client import connect

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("example", ["fastapi_app.py", "starlette_app.py"])
def test_example_runs_and_reports(example: str, collector: Any) -> None:
    port = free_port()
    env = dict(os.environ, MOESIF_BASE_URI=collector.url, MOESIF_APPLICATION_ID="example-test", PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / example)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                httpx.get(url + "/health/probe", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{example} did not start")
                time.sleep(0.05)
        auth = {"Authorization": "Bearer demo-token"}
        with httpx.Client(base_url=url, timeout=WAIT) as client:
            assert client.get("/api/items", headers=auth).status_code == 200
            assert client.post("/api/items", headers=auth, json={"name": "pen"}).status_code == 201
            assert client.get("/api/items").status_code == 401
            assert client.post("/api/contact", data={"email": "a@b.c", "message": "hi"}).json()["received"]
            assert client.get("/api/stream").text.count("tick") == 5
            assert client.get("/api/report", headers=auth).status_code == 202
        assert httpx.get(url + "/api/boom").status_code == 500
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=WAIT) as ws:
            ws.send("hi")
            assert ws.recv(timeout=WAIT) == "echo: hi"
        try:
            events = collector.wait_for_events(7)
        except TimeoutError:
            raise AssertionError([(e["request"]["uri"], e["response"]["status"]) for e in collector.events()])
        items = [e for e in events if e["request"]["uri"].endswith("/api/items")]
        assert sorted(e["response"]["status"] for e in items) == [200, 201, 401]
        assert {e["user_id"] for e in items if e["response"]["status"] < 400} == {"alice"}
        assert {e["company_id"] for e in items if e["response"]["status"] < 400} == {"acme"}
        assert event_for(events, "/api/boom")["response"]["status"] == 500
        contact = event_for(events, "/api/contact")["request"]
        if example == "starlette_app.py":  # REQUEST_BODY_MASKS is set there, and a form cannot be masked
            assert contact["body"] is None
        else:
            assert contact["transfer_encoding"] == "base64"
        assert not [e for e in events if "/health" in e["request"]["uri"]]
    finally:
        proc.terminate()
        proc.communicate(timeout=WAIT)
