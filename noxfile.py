"""The one entry point for work on this monorepo.

``nox -s tests`` runs lint, types and the whole default suite (what CI runs); ``nox -s lint`` runs ruff and
mypy --strict alone; ``nox -s wheels`` builds every package's wheel into ``dist/``.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "venv"

#: The monorepo's distributions, core first; a folder without a pyproject.toml yet is skipped.
PACKAGES = [
    "moesif_core",
    "moesif_collector",
    "moesifwsgi",
    "moesifasgi",
    "moesifdjango",
    "moesiftornado",
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
    "selenium",
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
]
#: Packages whose code passes mypy --strict (the core and every adapter).
TYPED = [
    "moesif_core",
    "moesif_collector",
    "moesifwsgi",
    "moesifasgi",
    "moesifdjango",
    "moesiftornado",
    "moesifpythonrequest",
]


def _local_packages() -> list[str]:
    return [f"./{p}" for p in PACKAGES if (ROOT / p / "pyproject.toml").exists()]


def _run_lint(session: nox.Session) -> None:
    """One ruff configuration (the root pyproject.toml) for the whole tree, then mypy --strict per package."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    for package in TYPED:
        if (ROOT / package / "pyproject.toml").exists():
            session.run("mypy", "--strict", f"{package}/src/{package}")


@nox.session
def tests(session: nox.Session) -> None:
    """Lint and types, then the whole default suite (what CI runs). Pass pytest arguments after ``--`` to run a
    part of it without the lint step (the fast loop: ``nox -R -s tests -- tests/wsgi -x``)."""
    session.install(*[arg for p in _local_packages() for arg in ("-e", p)], *TEST_DEPS, *LINT_DEPS)
    if not session.posargs:
        _run_lint(session)
    session.run("pytest", *session.posargs)
    if not session.posargs:  # the Django adapter again, on the other supported LTS
        session.install("django~=4.2.0")
        session.run("pytest", "tests/djangoapp")


DEMO_DEPS = ["requests", "flask", "fastapi", "uvicorn", "python-multipart", "django~=5.2.0", "tornado"]


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
    "psutil",
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
    """Build each package's wheel into dist/ (the wheels test installs them into fresh venvs)."""
    session.install("build")
    for p in _local_packages():
        session.run("python", "-m", "build", "--wheel", "--outdir", "dist", p)
