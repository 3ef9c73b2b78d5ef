"""The one entry point for work on this monorepo.

``nox -s tests`` runs lint, types and the whole default suite (what CI runs), installing the browser the browser
test drives where it can; ``nox -s lint`` runs ruff and mypy --strict alone; ``nox -s wheels`` builds every
package's sdist and wheel into ``dist/``; ``nox -s fuzz`` fuzzes at depth (not part of ``tests``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox
from nox.command import CommandFailed

ROOT = Path(__file__).parent
nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "venv"

#: The monorepo's distributions, core first: the one list a new package is added to (its folder also needs the
#: ``hatch_family.py`` link and the ``[tool.hatch.*]`` tables every other package's pyproject.toml has). Sessions,
#: lint, types and tests/packaging all read it; a folder without a pyproject.toml yet is skipped.
PACKAGES = [
    "moesif_core",
    "moesif_collector",
    "moesifwsgi",
    "moesifasgi",
    "moesifdjango",
    "moesiftornado",
    "moesif_aiohttp",
    "moesifpythonrequest",
]

TEST_DEPS = [
    "pytest>=8",
    "pytest-timeout",
    "hypothesis",
    "responses",
    "psutil",
    "requests",
    # frameworks, servers and clients the end-to-end tests run for real
    "flask",
    "bottle",
    "pyramid",
    "werkzeug",
    "gunicorn",
    "starlette",
    "fastapi",
    "uvicorn",
    "httpx",
    "python-multipart",
    "websockets",
    "django~=5.2.0",
    "tornado",
    "aiohttp",
    "aiohttp-sse",
    "selenium",
    # tests/packaging builds every sdist and wheel in the test environment
    "build",
    "hatchling",
]

LINT_DEPS = [
    "ruff",
    "mypy",
    "types-requests",
    "django-stubs",
    "pytest",
    "hypothesis",
    "responses",
    "flask",
    "starlette",
    "tornado",
    "httpx",
    "aiohttp",
]
#: Every package's code passes mypy --strict.
TYPED = PACKAGES

#: What the browser test (tests/collector) drives: Debian's chromium and its driver, command -> package.
BROWSER = {"/usr/bin/chromium": "chromium", "/usr/bin/chromedriver": "chromium-driver"}


def _local_packages() -> list[str]:
    return [f"./{p}" for p in PACKAGES if (ROOT / p / "pyproject.toml").exists()]


def _run_lint(session: nox.Session) -> None:
    """One ruff configuration (the root pyproject.toml) for the whole tree, then mypy --strict per package."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    for package in TYPED:
        if (ROOT / package / "pyproject.toml").exists():
            session.run("mypy", "--strict", f"{package}/src/{package}")


def _ensure_browser(session: nox.Session) -> None:
    """Install Debian's chromium and chromium-driver for the browser test where we can (as root, with apt-get);
    elsewhere stop at once with one line that says what to install, rather than one failed test at the end."""
    missing = [package for path, package in BROWSER.items() if not Path(path).exists()]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        try:
            session.run("apt-get", "update", "-qq", external=True, silent=True, env=env)
            session.run("apt-get", "install", "-y", "-qq", *missing, external=True, silent=True, env=env)
        except CommandFailed:
            session.error(f"apt-get could not install {' '.join(missing)} (its output is above); install them, rerun")
        return
    session.error(
        f"the browser test needs Debian's {' and '.join(missing)}: run "
        f"`sudo apt-get install -y {' '.join(missing)}` (or put chromium and chromedriver in /usr/bin), then rerun"
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Lint and types, then the whole default suite (what CI runs); installs the browser test's chromium first
    where it can. Pass pytest arguments after ``--`` to run a part of it without the lint and browser steps (the
    fast loop: ``nox -R -s tests -- tests/wsgi -x``)."""
    if not session.posargs:
        _ensure_browser(session)
    session.install(*[arg for p in _local_packages() for arg in ("-e", p)], *TEST_DEPS, *LINT_DEPS)
    if not session.posargs:
        _run_lint(session)
    session.run("pytest", *session.posargs)
    if not session.posargs:  # the Django adapter again, on the other supported LTS
        session.install("django~=4.2.0")
        session.run("pytest", "tests/djangoapp")


@nox.session
def fuzz(session: nox.Session) -> None:
    """Deep fuzzing, not part of ``tests``: 10,000 examples per adapter (WSGI, ASGI, Django, Tornado, aiohttp,
    outgoing) and against the collector's ingestion API and page JSON, with a random seed each run
    (``tests/fuzz/fuzz_deep.py``).
    A failing example is kept in ``tests/fuzz/regressions.json``, which the default suite replays. Set
    ``MOESIF_FUZZ_EXAMPLES`` for another count; pytest arguments go after ``--`` (``-- -k ingest``)."""
    session.install(*[arg for p in _local_packages() for arg in ("-e", p)], *TEST_DEPS)
    session.run(
        "pytest",
        "tests/fuzz/fuzz_deep.py",
        "-p",
        "no:cacheprovider",
        "-s",
        "--timeout=0",
        *session.posargs,
        env={"MOESIF_FUZZ_EXAMPLES": os.environ.get("MOESIF_FUZZ_EXAMPLES", "10000")},
    )


DEMO_DEPS = ["requests", "flask", "fastapi", "uvicorn", "python-multipart", "django~=5.2.0", "tornado", "aiohttp"]


@nox.session
def demo(session: nox.Session) -> None:
    """The local collector, the example apps with the middleware, traffic, and a summary. ``-- --serve`` keeps
    everything running to look at."""
    session.install(*[arg for p in _local_packages() for arg in ("-e", p)], *DEMO_DEPS)
    session.run("python", "examples/demo.py", *session.posargs)


BENCH_DEPS = [
    "requests",
    "flask",
    "werkzeug",
    "starlette",
    "fastapi",
    "uvicorn",
    "gunicorn",
    "django~=5.2.0",
    "tornado",
    "aiohttp",
    "psutil",
    "yappi",  # event_cost.py's profile (it sees every thread)
]


@nox.session
def bench(session: nox.Session) -> None:
    """Bare app, this project and the original packages (each in its own venv, made on first use) side by side in
    one run; prints the table and writes benchmarks/RESULTS.md. Figures, not asserts."""
    session.install(*[arg for p in _local_packages() for arg in ("-e", p)], *BENCH_DEPS)
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on everything, mypy --strict on the core and every package."""
    session.install(*[arg for p in _local_packages() for arg in ("-e", p)], *LINT_DEPS)
    _run_lint(session)


@nox.session
def wheels(session: nox.Session) -> None:
    """Build every package's sdist and wheel into dist/ (the wheel from the sdist, so each sdist is proven to build
    on its own); dist/ then holds exactly this version's files: ``pip install --find-links dist moesifwsgi``."""
    session.install("build")
    dist = ROOT / "dist"
    for old in dist.glob("moesif*"):
        old.unlink()
    for p in _local_packages():
        session.run("python", "-m", "build", "--outdir", str(dist), p)
