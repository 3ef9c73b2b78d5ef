"""examples/django_project, as a user runs it: ``manage.py runserver`` (WSGI) and ``uvicorn`` (ASGI), each in
its own process, sending to the real local collector."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import django
import pytest
import requests
from djt_support import b64, check_event, header, path_of

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "django_project"
REPORT = (PROJECT / "demo" / "data" / "report.csv").read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _run(cmd: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise RuntimeError(f"{cmd} exited with {proc.returncode}:\n{out}")
            try:
                requests.get(f"{url}/api/items", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _servers(port: int) -> dict[str, list[str]]:
    return {
        "runserver": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        "uvicorn": [
            sys.executable,
            "-m",
            "uvicorn",
            "exampleproject.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
    }


@pytest.mark.slow
@pytest.mark.parametrize("server", ["runserver", "uvicorn"])
def test_example_project(server: str, collector: Any, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MOESIF_"))}
    env.update(
        MOESIF_BASE_URI=collector.url,
        MOESIF_APPLICATION_ID="example-app",
        EXAMPLE_DEBUG="0",
        EXAMPLE_DB=str(tmp_path / "example.sqlite3"),
        PYTHONUNBUFFERED="1",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=PROJECT, env=env, check=True, timeout=120
    )
    port = _free_port()
    with _run(_servers(port)[server], env, port) as url:
        s = requests.Session()
        assert s.get(f"{url}/api/items").json()["items"][0] == {"id": 1, "name": "widget"}
        created = s.post(
            f"{url}/api/items", json={"name": "sprocket", "password": "hunter2"}, headers={"X-Company-Id": "acme"}
        )
        assert created.status_code == 201
        # Django's LoginView, CSRF and all
        page = s.get(f"{url}/accounts/login/")
        token = page.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        who = s.post(
            f"{url}/accounts/login/",
            data={"username": "demo", "password": "demo-password", "csrfmiddlewaretoken": token},
            headers={"Referer": f"{url}/accounts/login/"},
        )
        assert who.json() == {"user": "demo"}  # redirected to /api/whoami
        form = s.get(f"{url}/form").text
        token = form.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        thanks = s.post(
            f"{url}/form",
            data={"csrfmiddlewaretoken": token, "name": "Ada", "comment": "nice"},
            headers={"Referer": f"{url}/form"},
        )
        assert "Thanks, Ada." in thanks.text
        assert s.get(f"{url}/download").content == REPORT
        expected_user = "demo" if django.VERSION >= (5, 0) else None  # request.auser() is Django 5
        assert s.get(f"{url}/api/async").json() == {"async": True, "user": expected_user}
        events = collector.wait_for_events(10, timeout=20)
    session = s.cookies["sessionid"]
    by = {(e["request"]["verb"], path_of(e)): e for e in events}

    post = by[("POST", "/api/items")]
    check_event(post, verb="POST", uri=f"{url}/api/items", status=201)
    assert post["request"]["body"] == {"name": "sprocket"}  # REQUEST_BODY_MASKS removes the key
    assert post["response"]["body"] == {"name": "sprocket", "password": "hunter2", "id": 3}
    assert post["company_id"] == "acme"
    assert post["metadata"] == {"example": "django_project", "view": "items"}

    login = by[("POST", "/accounts/login/")]
    assert login["response"]["status"] == 302
    assert header(login["response"]["headers"], "Location") == "/api/whoami"
    assert login["user_id"] == "demo" and login["session_token"] == session
    # REQUEST_BODY_MASKS is set and a form cannot be masked: the core leaves the body (and the password) out
    assert login["request"]["body"] is None
    assert "request" in login["metadata"]["moesif_body_omitted"]

    whoami = by[("GET", "/api/whoami")]
    assert whoami["user_id"] == "demo" and whoami["session_token"] == session

    feedback = by[("POST", "/form")]
    assert feedback["user_id"] == "demo"
    assert feedback["request"]["body"] is None and "request" in feedback["metadata"]["moesif_body_omitted"]
    assert b"Thanks, Ada." in b64(feedback["response"]["body"])

    download = by[("GET", "/download")]
    assert b64(download["response"]["body"]) == REPORT
    assert header(download["response"]["headers"], "Content-Disposition") == 'attachment; filename="report.csv"'

    async_event = by[("GET", "/api/async")]
    check_event(async_event, verb="GET", uri=f"{url}/api/async", status=200)
    assert async_event["user_id"] == "demo"  # IDENTIFY_USER (run off the loop when the user is not resolved)
    assert async_event["session_token"] == session
    assert {r["app_id"] for r in collector.requests() if r["path"] == "/v1/events/batch"} == {"example-app"}
