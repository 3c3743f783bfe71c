"""Sessions: `nox -s run`, `tests`, `lint`, `typecheck`, `bench`, `bench_peer`."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

HERE = Path(__file__).parent
EXAMPLE = "src/palaestrio/examples/dummy_experiment.yml"


@nox.session
def run(session: nox.Session) -> None:
    """Run experiment files (default: the bundled example into ./palaestrio.db)."""
    session.install("-e", ".")
    args = session.posargs or ["experiment-start", EXAMPLE]
    session.run("palaestrio", *args)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (PostgreSQL tests start their own server when one is installed)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy", "src")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark script in benchmarks/ (each prints its own table)."""
    session.install("-e", ".")
    names = session.posargs or sorted(
        p.stem for p in (HERE / "benchmarks").glob("*.py") if not p.stem.startswith("_")
    )
    for name in names:
        session.run("python", f"benchmarks/{name}.py")
