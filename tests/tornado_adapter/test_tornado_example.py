"""examples/tornado_app.py works as its docstring says, against the real collector."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from moesiftornado import MoesifMiddleware

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tornado_app.py"


def load_example(monkeypatch: pytest.MonkeyPatch, base_uri: str) -> ModuleType:
    monkeypatch.setenv("MOESIF_BASE_URI", base_uri)
    monkeypatch.setenv("MOESIF_APPLICATION_ID", "example-app")
    spec = importlib.util.spec_from_file_location("tornado_example_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_app(collector: Any, serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example(monkeypatch, collector.url)
    assert example.BASE_URI == collector.url and example.APPLICATION_ID == "example-app"
    middleware = MoesifMiddleware({**example.moesif_config, "EVENT_BATCH_TIMEOUT": 0.05})
    try:
        server = serve(example.make_app(middleware))
        auth = {"Authorization": "Bearer demo-token"}
        listed = requests.get(server.url + "/api/items", headers=auth)
        created = requests.post(server.url + "/api/items", headers=auth, json={"name": "pen", "password": "x"})
        denied = requests.get(server.url + "/api/items")
        streamed = requests.get(server.url + "/api/stream")
        boom = requests.get(server.url + "/api/boom")
        probe = requests.get(server.url + "/health/probe")
        assert [
            listed.status_code,
            created.status_code,
            denied.status_code,
            streamed.status_code,
            boom.status_code,
            probe.status_code,
        ] == [200, 201, 401, 200, 500, 200]
        assert streamed.text.splitlines() == [json.dumps({"tick": i}) for i in range(5)]
        assert boom.json() == {"error": "Internal Server Error", "status": 500}
        assert middleware.flush(10)
        events = collector.wait_for_events(5)
        assert len(events) == 5  # the probe is skipped
        by_path = {
            (e["request"]["verb"], e["request"]["uri"].split("/", 3)[3], e["response"]["status"]): e for e in events
        }
        get = by_path[("GET", "api/items", 200)]
        assert get["user_id"] == "alice" and get["company_id"] == "acme"
        assert get["metadata"] == {"datacenter": "local", "handler": "ItemsHandler"}
        assert get["response"]["body"]["user"] == "alice"
        post = by_path[("POST", "api/items", 201)]
        assert post["request"]["body"] == {"name": "pen"}  # REQUEST_BODY_MASKS removes the key
        assert post["response"]["body"] == created.json()
        unauthorized = by_path[("GET", "api/items", 401)]
        assert unauthorized["user_id"] is None
        assert unauthorized["response"]["body"] == {"error": "Unauthorized", "status": 401}
        stream = by_path[("GET", "api/stream", 200)]
        assert base64.b64decode(stream["response"]["body"]) == streamed.content
        assert stream["response"]["headers"]["Transfer-Encoding"] == "chunked"
        error = by_path[("GET", "api/boom", 500)]
        assert error["response"]["body"] == {"error": "Internal Server Error", "status": 500}
        assert error["transaction_id"] == boom.headers["X-Moesif-Transaction-Id"]
    finally:
        middleware.shutdown(2)
