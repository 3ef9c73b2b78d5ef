"""Each package is its own distribution: installing an adapter brings the core and requests, never a framework.

Builds every package's wheel, then asks pip what installing each adapter's wheel into an empty environment would
install (a dry-run resolution, with the wheelhouse as an extra source: the core is not on an index), and really
installs the flagship adapter into a fresh venv and imports it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ["moesifwsgi", "moesifasgi", "moesifdjango", "moesiftornado", "moesifpythonrequest"]
FRAMEWORKS = {
    "django",
    "tornado",
    "starlette",
    "fastapi",
    "flask",
    "bottle",
    "pyramid",
    "werkzeug",
    "httpx",
    "uvicorn",
    "gunicorn",
}
#: What an adapter may legitimately bring: the ASGI adapter hands Starlette request/response objects to callbacks.
ALLOWED = {"moesifasgi": {"starlette"}}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    dists = [str(ROOT / p) for p in ["moesif_core", *ADAPTERS] if (ROOT / p / "pyproject.toml").exists()]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), *dists], check=True, timeout=600
    )
    return out


def wheel_of(adapter: str, wheelhouse: Path) -> Path:
    assert (ROOT / adapter / "pyproject.toml").exists(), f"{adapter} has no pyproject.toml"
    return next(wheelhouse.glob(f"{adapter}-*.whl"))


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapter_brings_core_and_requests_and_no_framework(adapter: str, wheelhouse: Path, tmp_path: Path) -> None:
    wheel = wheel_of(adapter, wheelhouse)
    report = tmp_path / "report.json"
    # the wheel file itself: the originals are on PyPI under the same names, some with the same versions
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report),
            "--find-links",
            str(wheelhouse),
            str(wheel),
        ],
        check=True,
        timeout=600,
    )
    items = json.loads(report.read_text())["install"]
    installed = {item["metadata"]["name"].lower().replace("_", "-") for item in items}
    assert {adapter, "moesif-core", "requests"} <= installed
    extra = installed & FRAMEWORKS - ALLOWED.get(adapter, set())
    assert not extra, f"{adapter} would pull in {sorted(extra)}"
    assert any(n.endswith(f"{adapter}/py.typed") for n in zipfile.ZipFile(wheel).namelist())


@pytest.mark.slow
def test_flagship_installs_into_a_fresh_venv_and_imports(wheelhouse: Path, tmp_path: Path) -> None:
    wheel = wheel_of("moesifwsgi", wheelhouse)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--find-links",
            str(wheelhouse),
            str(wheel),
        ],
        check=True,
        timeout=600,
    )
    out = subprocess.run(
        [
            str(py),
            "-c",
            "import moesifwsgi, moesif_core, sys; "
            "print(sorted(m for m in ('flask', 'django', 'tornado', 'starlette') if m in sys.modules))",
        ],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    assert out.strip() == "[]"
