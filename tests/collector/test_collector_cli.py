"""The command line: ``serve`` (port 0, signals), ``tail``, ``stats`` and ``send-sample``, as subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def served(tmp_path: Path, helpers: Any) -> Any:
    proc, reader, url = helpers.start_serve(tmp_path)
    yield proc, reader, url
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


def test_serve_prints_url_and_stops_on_sigterm(served: Any, tmp_path: Path, helpers: Any, make_event: Any) -> None:
    proc, reader, url = served
    assert url.startswith("http://127.0.0.1:") and int(url.rsplit(":", 1)[1]) > 0
    assert reader.next_line().strip() == f"web page: {url}/"
    client = helpers.Client(url)
    assert client.post("/v1/events/batch", [make_event()]).status == 201
    page = client.get("/", app_id=None)
    assert page.status == 200 and b"moesif-collector" in page.body
    client.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert "stopped" in proc.stderr.read()
    assert (tmp_path / "c.db").exists() and (tmp_path / "c.config.json").exists()


def test_serve_reports_a_busy_port(served: Any, tmp_path: Path, helpers: Any) -> None:
    _, _, url = served
    port = url.rsplit(":", 1)[1]
    result = subprocess.run(
        helpers.cli("serve", "--port", port, "--db", str(tmp_path / "other.db")),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot start" in result.stderr


def test_send_sample_tail_and_stats(served: Any, tmp_path: Path, helpers: Any, make_event: Any) -> None:
    _, _, url = served
    db = str(tmp_path / "c.db")
    # Follow from the database and from the URL at the same time. Whether a call is printed as "recent" at
    # start or as new while following depends on timing; either way each appears exactly once.
    tails = [
        subprocess.Popen(
            helpers.cli("tail", *source, "-n", "12", "--count", "12", "--interval", "0.05"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for source in (("--db", db), ("--url", url))
    ]
    readers = [helpers.LineReader(p) for p in tails]
    sent = subprocess.run(
        helpers.cli("send-sample", "--url", url, "--count", "12", "--batch-size", "5"),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "sent 12 of 12 events" in sent.stdout
    for proc, reader in zip(tails, readers):
        lines = [reader.next_line(timeout=15) for _ in range(12)]
        assert proc.wait(timeout=10) == 0  # --count reached
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
        first = lines[0].split()
        # time verb path status duration user
        assert first[1] == "GET" and first[2] == "/api/items" and first[3] == "200" and first[4].endswith("ms")
        assert sum(1 for line in lines if " 500 " in line) == 1

    out = subprocess.run(
        helpers.cli("tail", "--db", db, "-n", "3", "--no-follow"),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    assert len(out) == 3

    table = subprocess.run(
        helpers.cli("stats", "--db", db), capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert "calls             12" in table
    assert "p50" in table and "p95" in table and "/api/items" in table and "error rate" in table
    assert "/api/items/{id}" in table and "/api/items/42" not in table  # routes by template, with P50 and P95
    assert "ROUTE" in table.splitlines()[7] and "P95" in table.splitlines()[7]
    stats = json.loads(
        subprocess.run(
            helpers.cli("stats", "--url", url, "--json", "--status", "5xx"),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    )
    assert stats["calls"] == 1 and stats["errors"] == 1 and stats["routes"][0]["path"] == "/api/orders"


def test_tail_and_stats_without_a_database(tmp_path: Path, helpers: Any) -> None:
    for command in ("tail", "stats"):
        result = subprocess.run(
            helpers.cli(command, "--db", str(tmp_path / "missing.db")),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 2 and "no database" in result.stderr
    assert not (tmp_path / "missing.db").exists()
