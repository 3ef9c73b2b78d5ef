"""Each package is its own distribution: installing an adapter brings the core and requests, never a framework.

Builds every package's wheel, installs each adapter into a fresh venv with the wheelhouse as an extra source
(the core is not on an index here), and checks what got installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ["moesifwsgi", "moesifasgi", "moesifdjango", "moesiftornado", "moesifpythonrequest"]
FRAMEWORKS = {"django", "tornado", "starlette", "fastapi", "flask", "bottle", "pyramid", "werkzeug", "httpx",
              "uvicorn", "gunicorn"}
#: What an adapter may legitimately bring: the ASGI adapter hands Starlette request/response objects to callbacks.
ALLOWED = {"moesifasgi": {"starlette"}}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    dists = [str(ROOT / p) for p in ["moesif_core", *ADAPTERS] if (ROOT / p / "pyproject.toml").exists()]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), *dists], check=True,
                   timeout=600)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapter_installs_with_core_and_requests_only(adapter: str, wheelhouse: Path, tmp_path: Path) -> None:
    assert (ROOT / adapter / "pyproject.toml").exists(), f"{adapter} has no pyproject.toml"
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    wheel = next(wheelhouse.glob(f"{adapter}-*.whl"))
    version = wheel.name.split("-")[1]
    # pinned: the originals are on PyPI under the same names with higher versions
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--find-links", str(wheelhouse), f"{adapter}=={version}"],
                   check=True, timeout=600)
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format", "json"], check=True, capture_output=True,
                            text=True).stdout
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(listed)}
    assert {adapter, "moesif-core", "requests"} <= installed
    extra = installed & FRAMEWORKS - ALLOWED.get(adapter, set())
    assert not extra, f"{adapter} pulled in {sorted(extra)}"
    subprocess.run([str(py), "-c", f"import {adapter}, moesif_core"], check=True, timeout=60)
    import zipfile

    assert any(n.endswith(f"{adapter}/py.typed") for n in zipfile.ZipFile(wheel).namelist())
