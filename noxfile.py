"""Sessions: `nox -s run`, `tests`, `tests_palaestrai`, `tests_harl`, `slurm`, `browser`,
`lint`, `typecheck`, `bench`, `bench_peer`, `chaos`.

`nox` alone runs tests, lint and typecheck.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

HERE = Path(__file__).parent
PALAESTRAI = "palaestrai>=3.5,<3.6"
FIND_EXAMPLE = (
    "import importlib.resources as r; "
    "print(r.files('palaestrio') / 'examples' / 'dummy_experiment.yml')"
)


@nox.session
def run(session: nox.Session) -> None:
    """`palaestrio ARGS` (default: `experiment-start` of the bundled example into
    ./palaestrio.db). E.g. `nox -s run -- runs list`."""
    session.install("-e", ".")
    if session.posargs:
        args = list(session.posargs)
    else:
        example = session.run("python", "-c", FIND_EXAMPLE, silent=True)
        assert isinstance(example, str)
        args = ["experiment-start", example.strip()]
    session.run("palaestrio", *args)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (PostgreSQL tests start their own server when one is installed)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def tests_palaestrai(session: nox.Session) -> None:
    """The tests that run palaestrAI's own components (the `palaestrai` extra); the
    `tests` session skips them."""
    session.install("-e", ".[test,palaestrai]")
    files = [
        "tests/test_palaestrai_adapter.py",
        "tests/test_source_check.py",
        "tests/test_experiment_validation.py",
    ]
    session.run("pytest", *(session.posargs or files))


@nox.session
def slurm(session: nox.Session) -> None:
    """The Slurm tests, on a two-node Slurm the tests start on this machine and stop
    again (root; installs Debian's slurm-wlm when it is missing)."""
    if shutil.which("slurmctld") is None:
        apt = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=apt)
        session.run("apt-get", "install", "-y", "-qq", "slurm-wlm", external=True, env=apt)
    session.install("-e", ".[test]")
    files = session.posargs or ["tests/test_slurm.py"]
    session.run("pytest", *files, env={"PALAESTRIO_SLURM_TESTS": "1"})


@nox.session
def browser(session: nox.Session) -> None:
    """The web page's test in headless Chromium (root; installs Debian's chromium and
    chromium-driver when missing). `nox -s browser -- docs` also writes the README's
    screenshots into docs/."""
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        apt = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=apt)
        session.run(
            "apt-get", "install", "-y", "-qq", "chromium", "chromium-driver", external=True, env=apt
        )
    session.install("-e", ".[test]")
    env = {"CI": "1"}
    if session.posargs:
        env["PALAESTRIO_SCREENSHOTS"] = str(HERE / session.posargs[0])
    session.run("pytest", "tests/test_serve_browser.py", env=env)


@nox.session
def tests_harl(session: nox.Session) -> None:
    """hARL's SAC through the adapters against palaestrAI's own numbers. torch 2.13.0 is
    asked for by exact version first: pip takes this machine's CPU build from its wheel
    directory, where a range would let palaestrai-agents pull a CUDA build of several
    GiB from PyPI."""
    session.install("-e", ".[test,palaestrai]")
    session.install("torch==2.13.0")
    session.install("palaestrai-agents==3.6.2", "palaestrai-environments==3.5.5")
    session.run("pytest", "tests/test_harl_sac.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy", "src")


PEER_RESULTS = HERE / ".nox" / "bench_peer.json"
"""`bench_peer` writes its numbers here; `bench`'s table takes palaestrAI's time from it."""


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark script in benchmarks/ (each prints its own table), then issue 15's
    table of headline numbers, targets and met/missed (`benchmarks/_table.py`)."""
    # The benchmarks use the tests' helpers and what the tests need (pyarrow, ...).
    session.install("-e", ".[test]")
    names = session.posargs or sorted(
        p.stem for p in (HERE / "benchmarks").glob("*.py") if not p.stem.startswith("_")
    )
    results = Path(session.create_tmp()) / "bench-results.jsonl"
    results.unlink(missing_ok=True)
    failed = []
    for name in names:
        try:
            session.run(
                "python", f"benchmarks/{name}.py", env={"PALAESTRIO_BENCH_RESULTS": str(results)}
            )
        except CommandFailed:  # the table comes all the same
            failed.append(name)
    session.run("python", "benchmarks/_table.py", str(results), "--peer", str(PEER_RESULTS))
    if failed:
        session.error(f"benchmarks that failed: {', '.join(failed)}")


@nox.session
def chaos(session: nox.Session) -> None:
    """Random faults against batches of runs, invariants checked after each (issue 16):
    `nox -s chaos -- --iterations N --seed S` (`--only K` re-runs iteration K, `--faults
    KIND,...` draws from some kinds). Root (it mounts tmpfs and read-only binds for the
    disk faults; without, those kinds are skipped and say why)."""
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/chaos", *session.posargs)


@nox.session
def bench_peer(session: nox.Session) -> None:
    """palaestrio beside palaestrAI 3.5 (installed in a venv of its own): one table; the
    numbers also go to .nox/bench_peer.json, where `bench` reads palaestrAI's time.

    Takes several minutes (palaestrAI's runs are slow). Arguments go to the script,
    e.g. `nox -s bench_peer -- --repeat 3`.
    """
    session.install("-e", ".")
    peer = Path(session.create_tmp()) / "palaestrai-venv"
    palaestrai = peer / "bin" / "palaestrai"
    if not palaestrai.exists():
        session.run("python", "-m", "venv", str(peer))
        session.run(str(peer / "bin" / "python"), "-m", "pip", "install", PALAESTRAI, external=True)
    args = list(session.posargs)
    if "--json" not in args:
        args += ["--json", str(PEER_RESULTS)]
    session.run("python", "benchmarks/peer/bench_peer.py", "--palaestrai", str(palaestrai), *args)
