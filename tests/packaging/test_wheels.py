"""What a user gets from ``pip install moesifwsgi`` (or any other package of the family) built from this checkout.

Every package is built once per session the way ``nox -s wheels`` builds it (the sdist, then the wheel from the
sdist, so the sdist is proven to build standalone). Each installable distribution is then installed by name into
its own fresh venv **with the package index reachable** and our wheels as an extra source (``--find-links``, as the
README says), the way a user resolves it: the originals are on the index under the same names, so a sibling left
unpinned or a version below theirs would bring them in. Every ``moesif*`` distribution installed must be ours (the
family's version, from our wheels), and nothing of the originals' stack or of a web framework may come along.
"""

from __future__ import annotations

import ast
import email.parser
import importlib.util
import json
import subprocess
import sys
import tarfile
import venv
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any, Dict, List

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "VERSION").read_text().strip()
#: What the originals brought (``pip install moesifdjango==2.3.13`` & co. resolve to these); none may come along.
ORIGINALS_STACK = {
    "moesifapi",
    "apscheduler",
    "jsonpickle",
    "python-dateutil",
    "isodatetimehandler",
    "readerwriterlock",
    "tzlocal",
    "nose",
}
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
    "aiohttp",
}
#: What a distribution may legitimately bring: the ASGI adapter hands Starlette objects to callbacks; the aiohttp
#: one is an aiohttp middleware.
ALLOWED = {"moesifasgi": {"starlette"}, "moesif-aiohttp": {"aiohttp"}}


def family() -> List[str]:
    """The package folders, from the one list that names them (``PACKAGES`` in the noxfile)."""
    for node in ast.parse((ROOT / "noxfile.py").read_text()).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "PACKAGES" for t in targets) and node.value is not None:
                return list(ast.literal_eval(node.value))
    raise AssertionError("noxfile.py has no PACKAGES list")


FAMILY = [p for p in family() if (ROOT / p / "pyproject.toml").exists()]
#: What a user installs (the core comes with each of them).
INSTALLABLE = [p for p in FAMILY if p != "moesif_core"]


@dataclass
class Built:
    folder: str
    wheel: Path
    sdist: Path

    def wheel_metadata(self) -> Message:
        with zipfile.ZipFile(self.wheel) as z:
            name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            return email.parser.Parser().parsestr(z.read(name).decode())

    def sdist_metadata(self) -> Message:
        with tarfile.open(self.sdist) as t:
            member = next(m for m in t.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
            data = t.extractfile(member)
            assert data is not None
            return email.parser.Parser().parsestr(data.read().decode())

    @property
    def name(self) -> str:
        return canonicalize_name(self.wheel_metadata()["Name"])


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every package's sdist and wheel, built once: ``python -m build`` as ``nox -s wheels`` runs it (in the test
    environment itself when hatchling is there, which is only faster)."""
    out = tmp_path_factory.mktemp("dist")
    no_isolation = ["--no-isolation"] if importlib.util.find_spec("hatchling") else []
    for folder in FAMILY:
        subprocess.run(
            [sys.executable, "-m", "build", "-q", *no_isolation, "--outdir", str(out), str(ROOT / folder)],
            check=True,
            timeout=600,
            capture_output=True,
        )
    return out


def built(folder: str, dist: Path) -> Built:
    stem = folder.replace("-", "_")
    wheels = list(dist.glob(f"{stem}-*.whl"))
    sdists = list(dist.glob(f"{stem}-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, f"{folder}: {wheels} {sdists}"
    return Built(folder, wheels[0], sdists[0])


def test_every_package_folder_is_in_the_one_list() -> None:
    folders = {p.parent.name for p in ROOT.glob("*/pyproject.toml")}
    assert folders == set(FAMILY), "list each package folder in noxfile.py's PACKAGES (and only those)"


@pytest.mark.slow
@pytest.mark.parametrize("folder", FAMILY)
def test_wheel_and_sdist_carry_the_family_version_and_pins(folder: str, dist: Path) -> None:
    b = built(folder, dist)
    family_names = {built(f, dist).name for f in FAMILY}
    for metadata in (b.wheel_metadata(), b.sdist_metadata()):
        assert metadata["Version"] == VERSION
        requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]
        siblings = {canonicalize_name(r.name): str(r.specifier) for r in requirements if r.name in family_names}
        assert all(spec == f"=={VERSION}" for spec in siblings.values()), siblings
        if folder not in ("moesif_core", "moesif_collector"):
            assert "moesif-core" in siblings
    assert f"{VERSION}" in b.wheel.name and f"{VERSION}" in b.sdist.name
    with zipfile.ZipFile(b.wheel) as z:
        assert any(n.endswith(f"{folder}/py.typed") for n in z.namelist())
    with tarfile.open(b.sdist) as t:  # the build hook travels as a file, so the sdist builds on its own
        hook = next(m for m in t.getmembers() if m.name.endswith("/hatch_family.py"))
        assert hook.isfile()


@dataclass
class Installed:
    items: List[Dict[str, Any]]
    runtime: Dict[str, Any]


@pytest.fixture(scope="session")
def installs(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Installed]:
    """Each installable distribution, by name, into its own fresh venv: the index reachable, our wheels a
    ``--find-links`` source (all at once: pip mostly waits on the network)."""
    root = tmp_path_factory.mktemp("venvs")

    def install(folder: str) -> Installed:
        name = built(folder, dist).name
        env_dir = root / folder
        venv.create(env_dir, with_pip=False)
        py = env_dir / "bin" / "python"
        report = env_dir / "report.json"
        pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--report", str(report)]
        subprocess.run([*pip, "--find-links", str(dist), name], check=True, timeout=600, capture_output=True)
        probe = (
            f"import importlib, json, sys, {folder}\n"
            f"versions = {{m: importlib.import_module(m).__version__ for m in {FAMILY!r} if m in sys.modules}}\n"
            "print(json.dumps({'versions': versions, "
            "'frameworks': sorted(f for f in ('flask', 'django', 'tornado', 'starlette', 'aiohttp') "
            "if f in sys.modules)}))"
        )
        out = subprocess.run([str(py), "-c", probe], check=True, timeout=60, capture_output=True, text=True)
        return Installed(json.loads(report.read_text())["install"], json.loads(out.stdout))

    with ThreadPoolExecutor(max_workers=len(INSTALLABLE)) as pool:
        return dict(zip(INSTALLABLE, pool.map(install, INSTALLABLE)))


@pytest.mark.slow
@pytest.mark.parametrize("folder", INSTALLABLE)
def test_pip_install_from_our_wheels_brings_only_ours(folder: str, dist: Path, installs: Dict[str, Installed]) -> None:
    name = built(folder, dist).name
    result = installs[folder]
    installed = {canonicalize_name(i["metadata"]["name"]): i for i in result.items}
    assert name in installed
    ours = {n: i for n, i in installed.items() if n.startswith("moesif")}
    for n, item in ours.items():
        assert item["metadata"]["version"] == VERSION, f"{n} {item['metadata']['version']} is not ours"
        url = item["download_info"]["url"]
        assert url.startswith(dist.as_uri() + "/"), f"{n} came from {url}, not from our wheels"
    if folder != "moesif_collector":
        assert {"moesif-core", "requests"} <= set(installed)
    else:
        assert set(installed) == {"moesif-collector"}  # no dependencies at all
    assert not set(installed) & ORIGINALS_STACK, f"the originals' stack came along: {set(installed) & ORIGINALS_STACK}"
    extra = set(installed) & FRAMEWORKS - ALLOWED.get(name, set())
    assert not extra, f"{name} pulls in {sorted(extra)}"
    # at run time: every family module it loads says the family's version, and no framework is loaded
    assert folder in result.runtime["versions"]
    if folder != "moesif_collector":
        assert "moesif_core" in result.runtime["versions"]
    assert set(result.runtime["versions"].values()) == {VERSION}, result.runtime["versions"]
    assert set(result.runtime["frameworks"]) <= ALLOWED.get(name, set())
