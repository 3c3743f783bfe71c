"""palaestrio beside palaestrAI 3.5: the same scenarios through each one's command line.

    python benchmarks/peer/bench_peer.py --palaestrai /path/to/venv/bin/palaestrai

(`nox -s bench_peer` makes that venv and runs this.) Both sides get the same
palaestrAI-shaped experiment files, naming palaestrAI's dummy environment, brain, muscle
and objective; palaestrio maps those names to its own dummies of the same shape (10
sensors, 10 actuators, `max_iter` steps per episode). Each side stores into its own
fresh SQLite file. Times are wall-clock times of the whole command, as a user waits for
it; memory is the sum of RSS over the command's process tree, sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
TIMEOUT = 900.0
"""Seconds any one command may take before it is killed and reported as a timeout."""
TRIVIAL_RATIO_TARGET = 60.0
"""palaestrAI's wall time over palaestrio's for the trivial run (issue 15)."""


# -- experiment files (the same text for both sides) ------------------------------------


def experiment(uid: str, *, steps: int, agents: int, brain: str = "DummyBrain") -> str:
    agent_blocks = "".join(
        f"""
        - name: agent_{index}
          brain: {{name: "palaestrai.agent.dummy_brain:{brain}", params: {{}}}}
          muscle: {{name: "palaestrai.agent.dummy_muscle:DummyMuscle", params: {{}}}}
          objective:
            name: "palaestrai.agent.dummy_objective:DummyObjective"
            params: {{"params": 1}}
          sensors: [{", ".join(f"myenv.{i}" for i in range(5 * index, 5 * index + 5))}]
          actuators: [{", ".join(f"myenv.{i}" for i in range(5 * index, 5 * index + 5))}]"""
        for index in range(agents)
    )
    return f"""\
uid: "{uid}"
experiment_uid: "{uid}"
seed: 42
version: "3.5"
schedule:
  - phase_0:
      environments:
        - environment:
            name: "palaestrai.environment.dummy_environment:DummyEnvironment"
            uid: myenv
            params: {{"discrete": true, "max_iter": {steps}}}
      agents:{agent_blocks}
      simulation:
        name: "palaestrai.simulation:VanillaSimulationController"
        conditions:
          - name: "palaestrai.simulation:VanillaSimControllerTerminationCondition"
            params: {{}}
      phase_config:
        mode: train
        worker: 1
        episodes: 1
run_config:
  condition:
    name: "palaestrai.experiment:VanillaRunGovernorTerminationCondition"
    params: {{}}
"""


# -- the two command lines ---------------------------------------------------------------


class Side:
    name: str

    def prepare(self, directory: Path) -> None:
        """Untimed setup of a fresh store in `directory`."""

    def argv(self, directory: Path, files: list[Path], parallel: int) -> list[str]:
        raise NotImplementedError


class Palaestrio(Side):
    name = "palaestrio"

    def argv(self, directory: Path, files: list[Path], parallel: int) -> list[str]:
        script = Path(sys.executable).parent / "palaestrio"
        store = f"sqlite:///{directory / 'store.db'}"
        return [
            str(script),
            "experiment-start",
            "-p",
            str(parallel),
            "--store",
            store,
            *map(str, files),
        ]


@dataclass
class Palaestrai(Side):
    executable: Path
    name: str = "palaestrAI"

    def prepare(self, directory: Path) -> None:
        config = directory / "palaestrai-runtime.conf.yaml"
        config.write_text(f"store_uri: sqlite:///{directory / 'store.db'}\n")
        subprocess.run(
            [str(self.executable), "-c", str(config), "database-create"],
            cwd=directory,
            capture_output=True,
            check=True,
            timeout=TIMEOUT,
        )

    def argv(self, directory: Path, files: list[Path], parallel: int) -> list[str]:
        config = directory / "palaestrai-runtime.conf.yaml"
        return [
            str(self.executable),
            "-c",
            str(config),
            "experiment-start",
            "-p",
            str(parallel),
            *map(str, files),
        ]


# -- measuring a process tree --------------------------------------------------------------


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as file:
            return int(file.read().split()[1]) * PAGE
    except OSError:
        return 0


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Outcome:
    wall: float
    returncode: int | None
    peak_rss: int = 0
    peak_processes: int = 0
    seen: set[int] = field(default_factory=set)
    left_behind: int = 0
    output: str = ""
    signal_to_exit: float | None = None


@contextlib.contextmanager
def sampling(root: int, outcome: Outcome) -> Iterator[None]:
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            pids = {root} | descendants(root)
            pids = {pid for pid in pids if alive(pid)}
            outcome.seen |= pids
            outcome.peak_processes = max(outcome.peak_processes, len(pids))
            outcome.peak_rss = max(outcome.peak_rss, sum(rss(pid) for pid in pids))
            stop.wait(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def measure(
    argv: list[str],
    directory: Path,
    *,
    interrupt_when: Callable[[], bool] | None = None,
) -> Outcome:
    """Runs `argv` in its own session (like a shell's foreground job); with
    `interrupt_when`, sends SIGINT to its process group (a terminal's ^C) once that
    returns True and measures from there to the command's exit."""
    log = directory / f"output-{time.monotonic_ns()}.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAESTRIO_")}
    env["PYTHONUNBUFFERED"] = "1"
    with open(log, "w") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            argv,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        outcome = Outcome(wall=0.0, returncode=None)
        with sampling(process.pid, outcome):
            try:
                if interrupt_when is not None:
                    while process.poll() is None and not interrupt_when():
                        if time.monotonic() - started > TIMEOUT:
                            raise subprocess.TimeoutExpired(argv, TIMEOUT)
                        time.sleep(0.1)
                    sent = time.monotonic()
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGINT)
                    process.wait(timeout=TIMEOUT)
                    outcome.signal_to_exit = time.monotonic() - sent
                else:
                    process.wait(timeout=TIMEOUT)
                outcome.returncode = process.returncode
            except subprocess.TimeoutExpired:
                outcome.returncode = None
            outcome.wall = time.monotonic() - started
    # Whatever the command left running is counted, then removed.
    time.sleep(0.5)
    leftovers = [pid for pid in outcome.seen if pid != process.pid and alive(pid)]
    outcome.left_behind = len(leftovers)
    for pid in [process.pid, *leftovers]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    outcome.output = log.read_text(errors="replace")
    return outcome


def world_states(db: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as c:
            return int(c.execute("SELECT count(*) FROM world_states").fetchone()[0])
    except sqlite3.Error:
        return 0


# -- scenarios -------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    unit: str
    higher_is_better: bool = False
    values: dict[str, list[float | None]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def add(self, side: str, value: float | None, note: str = "") -> None:
        self.values.setdefault(side, []).append(value)
        if note:
            self.notes.setdefault(side, []).append(note)

    def median(self, side: str) -> float | None:
        values = [v for v in self.values.get(side, []) if v is not None]
        return statistics.median(values) if values else None


def scenarios(side: Side, base: Path, rows: dict[str, Row]) -> None:
    def fresh(name: str) -> Path:
        directory = Path(tempfile.mkdtemp(prefix=f"{side.name}-{name}-", dir=base))
        side.prepare(directory)
        return directory

    def write(directory: Path, uid: str, **options: object) -> Path:
        path = directory / f"{uid}.yml"
        path.write_text(experiment(uid, **options))  # type: ignore[arg-type]
        return path

    def check(outcome: Outcome, directory: Path, expected_steps: int) -> str:
        stored = world_states(directory / "store.db")
        if outcome.returncode != 0:
            return f"exit {outcome.returncode}"
        if stored != expected_steps:
            return f"stored {stored} of {expected_steps} steps"
        return ""

    # (a) trivial run: 1 environment, 1 agent, 10 steps.
    directory = fresh("trivial")
    outcome = measure(
        side.argv(directory, [write(directory, "trivial", steps=10, agents=1)], 1), directory
    )
    note = check(outcome, directory, 10)
    rows["trivial"].add(side.name, outcome.wall, note)

    # (b) steps/s with 2 agents, store on; process tree of the 5,000-step run.
    for steps in (1_000, 5_000):
        directory = fresh(f"steps{steps}")
        run = write(directory, f"steps-{steps}", steps=steps, agents=2)
        outcome = measure(side.argv(directory, [run], 1), directory)
        note = check(outcome, directory, steps)
        rows[f"rate{steps}"].add(side.name, steps / outcome.wall, note)
        if steps == 5_000:
            rows["rss1"].add(side.name, outcome.peak_rss / 2**20)
            rows["procs1"].add(side.name, outcome.peak_processes)

    # (c) 4 runs of 1,000 steps, 4 in parallel.
    directory = fresh("parallel")
    files = [write(directory, f"parallel-{i}", steps=1_000, agents=2) for i in range(4)]
    outcome = measure(side.argv(directory, files, 4), directory)
    note = check(outcome, directory, 4_000)
    rows["par_wall"].add(side.name, outcome.wall, note)
    rows["par_rss"].add(side.name, outcome.peak_rss / 2**20)
    rows["par_procs"].add(side.name, outcome.peak_processes)

    # (d) SIGINT to the process group (^C) once the run is storing steps.
    directory = fresh("sigint")
    db = directory / "store.db"
    run = write(directory, "interrupted", steps=10_000_000, agents=2)
    outcome = measure(
        side.argv(directory, [run], 1), directory, interrupt_when=lambda: world_states(db) > 0
    )
    note = f"{outcome.left_behind} processes left behind" if outcome.left_behind else ""
    if outcome.returncode is None:
        note = "did not exit"
    rows["sigint"].add(side.name, outcome.signal_to_exit, note)

    # (e) a misspelled class name: how long until the user is told (and the command ends).
    directory = fresh("misspelled")
    run = write(directory, "misspelled", steps=10, agents=1, brain="DumyBrain")
    outcome = measure(side.argv(directory, [run], 1), directory)
    named = "DumyBrain" in outcome.output
    note = "" if named else "error does not name DumyBrain"
    if outcome.returncode == 0:
        note = "exit 0"
    rows["misspelled"].add(side.name, outcome.wall, note)


ROWS = [
    Row("trivial run (1 env, 1 agent, 10 steps): wall", "s"),
    Row("1,000 steps, 2 agents, SQLite: steps/s", "steps/s", higher_is_better=True),
    Row("5,000 steps, 2 agents, SQLite: steps/s", "steps/s", higher_is_better=True),
    Row("5,000-step run: peak RSS of the process tree", "MB"),
    Row("5,000-step run: peak processes in the tree", ""),
    Row("4 runs x 1,000 steps, 4 in parallel: wall", "s"),
    Row("4 runs in parallel: peak RSS of the tree", "MB"),
    Row("4 runs in parallel: peak processes", ""),
    Row("SIGINT (^C) during a run -> command exits", "s"),
    Row("misspelled class name -> error reported", "s"),
]
KEYS = [
    "trivial",
    "rate1000",
    "rate5000",
    "rss1",
    "procs1",
    "par_wall",
    "par_rss",
    "par_procs",
    "sigint",
    "misspelled",
]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "steps/s" or unit == "MB":
        return f"{value:,.0f} {unit}"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.0f}"


def table(rows: dict[str, Row], sides: list[str]) -> str:
    header = ["scenario", *sides]
    if len(sides) == 2:
        header.append("palaestrio's advantage")
    lines = [header]
    for key in KEYS:
        row = rows[key]
        cells = [
            row.label,
            *(
                fmt(row.median(side), row.unit) + ("*" if side in row.notes else "")
                for side in sides
            ),
        ]
        if len(sides) == 2:
            ours, theirs = row.median(sides[0]), row.median(sides[1])
            if ours and theirs:
                ratio = ours / theirs if row.higher_is_better else theirs / ours
                cells.append(f"{ratio:,.1f}x")
            else:
                cells.append("-")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        out.append(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            )
        )
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    for key in KEYS:
        for side, notes in rows[key].notes.items():
            for note in sorted(set(notes)):
                out.append(f"* {rows[key].label} [{side}]: {note}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--palaestrai", type=Path, help="palaestrAI's `palaestrai` executable")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario (median)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument(
        "--keep", type=Path, help="keep every scenario's directory (store, output) under here"
    )
    args = parser.parse_args()
    sides: list[Side] = [Palaestrio()]
    if args.palaestrai is not None:
        sides.append(Palaestrai(args.palaestrai.resolve()))
    rows = dict(zip(KEYS, ROWS, strict=True))
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            base = str(args.keep)
        else:
            base = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-peer-"))
        for side in sides:
            for repetition in range(args.repeat):
                print(f"{side.name}: repetition {repetition + 1} of {args.repeat}", flush=True)
                scenarios(side, Path(base), rows)
    print()
    print(
        f"palaestrio vs palaestrAI, median of {args.repeat}, {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after"
    )
    print(table(rows, [side.name for side in sides]))
    ours, theirs = (rows["trivial"].median(side.name) for side in (sides[0], sides[-1]))
    if len(sides) == 2 and ours and theirs:
        ratio = theirs / ours
        result = "met" if ratio >= TRIVIAL_RATIO_TARGET else "MISSED"
        print(
            f"trivial run, whole command: palaestrio {ratio:.1f}x faster "
            f"(target >= {TRIVIAL_RATIO_TARGET:g}x): {result}"
        )
    if args.json:
        args.json.write_text(json.dumps({key: rows[key].values for key in KEYS}, indent=2) + "\n")


if __name__ == "__main__":
    main()
