"""The READMEs' generated sections are current: each package's settings table matches what the core accepts (keys,
aliases, types, the adapter's defaults), and the "Migrating from the original" list matches docs/migrating.md.

A failure names the README; ``python tools/readme_sections.py`` rewrites the sections."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_sections", ROOT / "tools" / "readme_sections.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


GEN = generator()


def test_every_setting_is_described() -> None:
    keys = set(GEN.canonical_keys())
    assert keys == set(GEN.DOCS), "describe each setting in DOCS in tools/readme_sections.py"
    callbacks = {k for k in keys if GEN.TYPES[GEN.core_settings._SPEC[k][1][1]] == "function"}
    assert callbacks == set(GEN.RETURNS)


def test_every_package_but_the_collector_has_a_settings_table() -> None:
    import test_wheels

    missing = set(test_wheels.FAMILY) - {"moesif_collector"} - set(GEN.PACKAGES)
    assert not missing, f"add {sorted(missing)} to PACKAGES in tools/readme_sections.py (its callbacks' arguments)"


@pytest.mark.parametrize("package", sorted(GEN.readme_paths()), ids=lambda p: p or "README.md")
def test_readme_sections_are_current(package: str) -> None:
    path = GEN.readme_paths()[package]
    current = path.read_text()
    assert GEN.render(package, current, path) == current, (
        f"{path.relative_to(ROOT)} is out of date: run python tools/readme_sections.py"
    )
    assert "**Masks**" in current  # the shared migrating list is there
    if package:
        assert "| `APPLICATION_ID` | str | required |" in current
        assert "## Migrating from the original" in current


#: The originals' versions the docs compare ours with (moesifwsgi, moesifdjango, moesifasgi, moesiftornado,
#: moesifpythonrequest, moesif-aiohttp).
ORIGINAL_VERSIONS = {"1.10.5", "2.3.13", "1.1.8", "0.1.4", "0.3.5", "1.1.0"}


def test_docs_name_the_family_version() -> None:
    """A release changes ``VERSION``; every version the READMEs, docs/migrating.md and the changelog name as ours
    must follow (an x.y.z that is not an original's is ours), and it stays above every original's."""
    from packaging.version import Version

    version = (ROOT / "VERSION").read_text().strip()
    assert all(Version(version) > Version(v) for v in ORIGINAL_VERSIONS)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (\S+)", changelog, re.M)
    assert headings and headings[0] == version, "CHANGELOG.md: the first entry is this release's"
    texts = {path: path.read_text() for path in [ROOT / "README.md", ROOT / "docs" / "migrating.md"]}
    texts.update({path: path.read_text() for path in ROOT.glob("*/README.md")})
    texts[ROOT / "CHANGELOG.md"] = "\n## ".join(changelog.split("\n## ")[:2])  # older entries keep their versions
    stale = {
        f"{path.relative_to(ROOT)}: {found}"
        for path, text in texts.items()
        for found in re.findall(r"(?<![\d.])\d+\.\d+\.\d+(?![\d.])", text)
        if found != version and found not in ORIGINAL_VERSIONS
    }
    assert not stale, f"name the family's version ({version}, from VERSION) there: {sorted(stale)}"
