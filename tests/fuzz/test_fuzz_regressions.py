"""Every example the deep fuzz session (``nox -s fuzz``) ever failed on, and the hostile inputs of issue 18, replayed
against the same checks as there (``fuzz_checks.py``): what was fixed stays fixed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from fuzz_checks import from_json, release, run_check


@pytest.fixture(autouse=True, scope="module")
def _released() -> Iterator[None]:
    """Servers, agents and the process-wide outgoing capture the checks started are taken down after the module."""
    yield
    release()


KEPT = json.loads((Path(__file__).resolve().parent / "regressions.json").read_text())


@pytest.mark.parametrize("entry", KEPT, ids=[f"{e['target']}-{i}" for i, e in enumerate(KEPT)])
def test_kept_example(entry: dict[str, Any]) -> None:
    run_check(entry["target"], entry["config"], from_json(entry["target"], entry["example"]))
