"""The README's test line is what CI runs, and on a fresh machine it gets what the browser test needs itself.

``.ci/run`` must call exactly the README's test command, and that command's ``nox -s tests`` session installs
Debian's ``chromium`` and ``chromium-driver`` where it can (as root, with ``apt-get``) or stops at once with one line
saying what to install. The session's step is called here with a stand-in for nox's session object (nox itself is
not in the test environment), the machine's state played by the test: the browser there, missing as a user, missing
as root.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import types
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_command(heading: str) -> str:
    """The one command in the ``sh`` block that follows the README paragraph starting with ``heading``."""
    text = (ROOT / "README.md").read_text()
    start = text.index(heading)
    block = re.search(r"```sh\n(.*?)\n```", text[start:], re.S)
    assert block is not None, f"no command after {heading!r}"
    return block.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    command = readme_command("Run the whole test suite")
    assert command.endswith("nox -s tests")
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == command


class Quit(Exception):
    """What nox's ``session.error`` raises: the session stops there."""


class FakeSession:
    def __init__(self, fail: bool = False) -> None:
        self.runs: List[Tuple[Tuple[str, ...], Dict[str, Any]]] = []
        self.fail = fail

    def run(self, *args: str, **kwargs: Any) -> None:
        self.runs.append((args, kwargs))
        if self.fail and "install" in args:
            raise sys.modules["nox.command"].CommandFailed("exit 100")

    def error(self, message: str) -> None:
        raise Quit(message)


@pytest.fixture
def noxfile(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The repo's noxfile, imported over a minimal ``nox`` (its decorators and options do nothing here)."""
    command = types.SimpleNamespace(CommandFailed=type("CommandFailed", (Exception,), {}))
    nox = types.SimpleNamespace(
        options=types.SimpleNamespace(),
        session=lambda fn=None, **_: fn if fn is not None else (lambda f: f),
        command=command,
    )
    monkeypatch.setitem(sys.modules, "nox", nox)
    monkeypatch.setitem(sys.modules, "nox.command", command)
    spec = importlib.util.spec_from_file_location("repo_noxfile", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def browser_at(noxfile: types.ModuleType, tmp_path: Path, present: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = {str(tmp_path / "chromium"): "chromium", str(tmp_path / "chromedriver"): "chromium-driver"}
    if present:
        for path in paths:
            Path(path).touch()
    monkeypatch.setattr(noxfile, "BROWSER", paths)


def test_a_machine_with_the_browser_installs_nothing(
    noxfile: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser_at(noxfile, tmp_path, True, monkeypatch)
    session = FakeSession()
    noxfile._ensure_browser(session)
    assert session.runs == []


def test_as_a_user_without_the_browser_it_stops_with_one_line_saying_what_to_install(
    noxfile: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser_at(noxfile, tmp_path, False, monkeypatch)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    session = FakeSession()
    with pytest.raises(Quit) as stopped:
        noxfile._ensure_browser(session)
    message = str(stopped.value)
    assert "\n" not in message and "sudo apt-get install -y chromium chromium-driver" in message
    assert session.runs == []


def test_as_root_it_installs_the_browser_with_apt_get(
    noxfile: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser_at(noxfile, tmp_path, False, monkeypatch)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}" if name == "apt-get" else None)
    session = FakeSession()
    noxfile._ensure_browser(session)
    commands = [args for args, _ in session.runs]
    assert commands[0][:2] == ("apt-get", "update")
    assert commands[-1][:2] == ("apt-get", "install") and commands[-1][-2:] == ("chromium", "chromium-driver")
    assert all(kwargs.get("external") for _, kwargs in session.runs)

    failing = FakeSession(fail=True)
    with pytest.raises(Quit, match="apt-get could not install chromium chromium-driver"):
        noxfile._ensure_browser(failing)
