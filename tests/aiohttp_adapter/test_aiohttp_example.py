"""examples/aiohttp_app.py works as its docstring says, against the real collector."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from moesif_aiohttp import MoesifMiddleware

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "aiohttp_app.py"


def load_example(monkeypatch: pytest.MonkeyPatch, base_uri: str) -> ModuleType:
    monkeypatch.setenv("MOESIF_BASE_URI", base_uri)
    monkeypatch.setenv("MOESIF_APPLICATION_ID", "example-app")
    spec = importlib.util.spec_from_file_location("aiohttp_example_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_app(collector: Any, serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example(monkeypatch, collector.url)
    assert example.BASE_URI == collector.url and example.APPLICATION_ID == "example-app"
    middleware = MoesifMiddleware({**example.moesif_settings, "EVENT_BATCH_TIMEOUT": 0.05})
    try:
        server = serve(example.make_app(middleware))
        auth = {"Authorization": "Bearer demo-token"}
        listed = requests.get(server.url + "/api/items", headers=auth)
        created = requests.post(server.url + "/api/items", headers=auth, json={"name": "pen", "password": "x"})
        denied = requests.get(server.url + "/api/items")
        streamed = requests.get(server.url + "/api/events")
        boom = requests.get(server.url + "/api/boom")
        probe = requests.get(server.url + "/health/probe")
        statuses = [r.status_code for r in (listed, created, denied, streamed, boom, probe)]
        assert statuses == [200, 201, 401, 200, 500, 200]
        ticks = [line for line in streamed.text.split("\n") if line]
        assert ticks == [f"data: {json.dumps({'tick': i})}" for i in range(5)]
        assert middleware.flush(10)
        events = collector.wait_for_events(5)
        assert len(events) == 5  # the probe is skipped
        by = {(e["request"]["verb"], e["request"]["uri"].split("/", 3)[3], e["response"]["status"]): e for e in events}
        get = by[("GET", "api/items", 200)]
        assert get["user_id"] == "alice" and get["company_id"] == "acme"
        assert get["metadata"] == {"datacenter": "local", "route": "/api/items"}
        post = by[("POST", "api/items", 201)]
        assert post["request"]["body"] == {"name": "pen"}  # REQUEST_BODY_MASKS takes the password out
        assert post["response"]["body"] == {"id": 2, "name": "pen"}
        assert by[("GET", "api/items", 401)]["response"]["body"] == {"error": "Unauthorized"}
        sse = by[("GET", "api/events", 200)]
        assert base64.b64decode(sse["response"]["body"]).decode() == streamed.text
        assert ("GET", "api/boom", 500) in by
    finally:
        middleware.shutdown(2)
