"""The examples run as the user runs them (``python examples/flask_app.py``) against the local collector."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
import requests
from wsgi_support import check_shape, free_port, wait_http

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _events(collector: Any, n: int) -> List[Dict[str, Any]]:
    deadline = time.monotonic() + 20
    while collector.count_events() < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return collector.events()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["flask_app", "bottle_app", "pyramid_app"])
def test_example_runs_and_reports(collector: Any, name: str) -> None:
    port = free_port()
    env = dict(
        os.environ,
        PORT=str(port),
        MOESIF_BASE_URI=collector.url,
        MOESIF_APPLICATION_ID="example-test",
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / f"{name}.py")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health/probe", proc=proc)
        auth = {"Authorization": "Bearer demo-token"}
        assert requests.get(url + "/api/items", headers=auth, timeout=10).status_code == 200
        created = requests.post(
            url + "/api/items", headers=auth, json={"name": "pen", "password": "hunter2"}, timeout=10
        )
        assert created.status_code == 201
        assert requests.get(url + "/api/items", timeout=10).status_code == 401
        assert requests.post(url + "/api/contact", data={"email": "a@b.c"}, timeout=10).status_code == 200
        export = requests.get(url + "/api/export", timeout=30)
        assert export.status_code == 200 and len(export.content) > 5_000_000
        assert requests.get(url + "/api/boom", timeout=10).status_code == 500
        events = _events(collector, 6)
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
    assert len(events) == 6  # the health probes were skipped
    for e in events:
        check_shape(e)
    by = {
        (e["request"]["verb"], e["request"]["uri"].split(str(port), 1)[1], e["response"]["status"]): e for e in events
    }
    post = by[("POST", "/api/items", 201)]
    assert post["user_id"] == "alice" and post["company_id"] == "acme"
    assert post["request"]["body"] == {"name": "pen"}  # REQUEST_BODY_MASKS removes the key
    assert by[("GET", "/api/items", 401)]["user_id"] is None
    form = by[("POST", "/api/contact", 200)]
    # REQUEST_BODY_MASKS is set and a form is not JSON that can be masked: the core leaves the body out, says why
    assert form["request"]["body"] is None and "request" in form["metadata"]["moesif_body_omitted"]
    assert base64.b64decode(form["response"]["body"]).startswith(b"<p>Thanks, a@b.c")
    assert by[("GET", "/api/export", 200)]["metadata"]["moesif_body_truncated"]["response"] == len(export.content)
    assert ("GET", "/api/boom", 500) in by
