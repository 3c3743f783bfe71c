"""Sweeps of short runs through the command line (issue 15): ``python benchmarks/sweep.py``.

(a) 50 runs of 10 steps, ``palaestrio experiment-start -p 2``: runs/s of the whole
    process (interpreter start to exit), as a user waits for it;
(b) one trivial run (1 environment, 1 agent, 10 steps, palaestrAI's names): wall time of
    the whole process (what `benchmarks/peer/bench_peer.py` compares with palaestrAI;
    palaestrAI 3.5.18 takes about 38 s, so 60x is about 0.63 s).

Each measurement is a fresh process with bytecode caching on (as on users' machines) and a
fresh SQLite store, checked afterwards: every run ``finished``, every step stored once.
Median of ``--repeat``; the load average before and after is printed with the table, and
the CPU time of the whole process tree (user + system), which other load on the machine
changes far less than wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import record

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the tests' run files
sys.path.insert(0, str(HERE / "peer"))  # palaestrAI-shaped run files

SWEEP_RUNS = 50
STEPS = 10
PARALLEL = 2
SWEEP_TARGET = 8.0
"""Runs per second of the sweep (issue 15)."""
TRIVIAL_TARGET = 0.6
"""Seconds for the trivial run, whole process (60x palaestrAI's ~38 s, with margin)."""
CHILD_ENV = {
    k: v
    for k, v in os.environ.items()
    if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("PALAESTRIO_")
}
PALAESTRIO = Path(sys.executable).parent / "palaestrio"


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def experiment_start(directory: Path, files: list[Path], parallel: int) -> tuple[float, float]:
    """Wall and CPU seconds of one `palaestrio experiment-start` (its governors are its
    children, reaped: their CPU counts); raises unless it exits 0."""
    argv = [str(PALAESTRIO), "experiment-start", "--plain", "-p", str(parallel)]
    argv += ["--store", f"sqlite:///{directory / 'store.db'}", *map(str, files)]
    cpu = cpu_of_children()
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=directory, env=CHILD_ENV, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return wall, cpu_of_children() - cpu


def check_store(db: Path, runs: int, steps: int) -> None:
    """Every run `finished`, with exactly `steps` world states each."""
    with sqlite3.connect(db) as connection:
        statuses = connection.execute("SELECT status FROM experiment_run_instances").fetchall()
        (world_states,) = connection.execute("SELECT count(*) FROM world_states").fetchone()
    if sorted(statuses) != [("finished",)] * runs or world_states != runs * steps:
        raise SystemExit(
            f"{db}: expected {runs} finished runs and {runs * steps} world states, "
            f"found {statuses} and {world_states}"
        )


def sweep(base: Path) -> tuple[float, float]:
    """Runs per second, and CPU seconds per run."""
    from executor_support import write_experiment

    directory = Path(tempfile.mkdtemp(prefix="sweep-", dir=base))
    files = [write_experiment(directory, f"run-{i:02}", max_iter=STEPS) for i in range(SWEEP_RUNS)]
    wall, cpu = experiment_start(directory, files, PARALLEL)
    check_store(directory / "store.db", SWEEP_RUNS, STEPS)
    return SWEEP_RUNS / wall, cpu / SWEEP_RUNS


def trivial(base: Path) -> tuple[float, float]:
    """Wall and CPU seconds."""
    from bench_peer import experiment

    directory = Path(tempfile.mkdtemp(prefix="trivial-", dir=base))
    file = directory / "trivial.yml"
    file.write_text(experiment("trivial", steps=STEPS, agents=1))
    times = experiment_start(directory, [file], 1)
    check_store(directory / "store.db", 1, STEPS)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="measurements each (median)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="palaestrio-sweep-") as tmp:
        base = Path(tmp)
        trivial(base)  # once untimed: bytecode caches written, files in the page cache
        sweeps = [sweep(base) for _ in range(args.repeat)]
        trivials = [trivial(base) for _ in range(args.repeat)]
    rate, cpu_per_run = (statistics.median(values) for values in zip(*sweeps, strict=True))
    wall, cpu = (statistics.median(values) for values in zip(*trivials, strict=True))
    record("sweep_runs_per_second", rate, spread=[s[0] for s in sweeps])
    record("trivial_cli_seconds", wall, spread=[t[0] for t in trivials])
    rows = [
        (
            f"(a) {SWEEP_RUNS} x {STEPS}-step runs, -p {PARALLEL}, CLI whole process",
            f"{rate:.1f} runs/s",
            f">= {SWEEP_TARGET:g} runs/s",
            rate >= SWEEP_TARGET,
        ),
        ("(a) CPU time per run (executor + governors)", f"{cpu_per_run:.3f} s", "", None),
        (
            f"(b) trivial run ({STEPS} steps), CLI whole process",
            f"{wall:.3f} s",
            f"<= {TRIVIAL_TARGET:g} s",
            wall <= TRIVIAL_TARGET,
        ),
        ("(b) CPU time of the whole process tree", f"{cpu:.3f} s", "", None),
    ]
    print(
        f"sweeps through the CLI, median of {args.repeat}, {os.cpu_count()} CPUs, load average "
        f"{load_before:.2f} before and {os.getloadavg()[0]:.2f} after"
    )
    width = max(len(row[0]) for row in rows)
    print(f"{'scenario':<{width}}  {'measured':>12}  {'target':<16}  result")
    for name, value, target, met in rows:
        result = "" if met is None else "met" if met else "MISSED"
        print(f"{name:<{width}}  {value:>12}  {target:<16}  {result}")


if __name__ == "__main__":
    main()
