"""Governors started ahead of their runs (issue 15): they take the next run, die with the
executor when never used, are replaced when they die first, and import only what the
run needs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from executor_support import (
    HERE,
    SecondLaunchDiffers,
    load_run,
    stop_process,
    stored_rows,
    wait_for_steps,
    write_experiment,
)
from palaestrio import proctree
from palaestrio.executor import ChildExit, Executor, LocalLauncher, open_executor
from palaestrio.executor.supervisor import governor_environment
from palaestrio.experiment import ExperimentRun, load_experiment_runs

SLOW = "executor_components:SlowEnvironment"
AHEAD = b"palaestrio[governor:ahead]"
"""The title of a governor started ahead, until it learns its run."""


def governors_ahead(ancestor: int) -> list[int]:
    found = []
    for pid in proctree.descendants(ancestor):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(AHEAD):
                found.append(pid)
        except OSError:
            continue
    return found


async def a_governor_ahead(ancestor: int, executor: Executor | None = None) -> int:
    """A governor waiting for a run; with `executor`, once its first run is running
    (the first run's governor is titled "ahead" too until it learns its run)."""
    while executor is not None and executor.experiment_runs()[0].status != "running":
        await trio.sleep(0.01)
    while not (found := governors_ahead(ancestor)):
        if executor is not None:  # else no governor waits ahead, ever: fail, do not hang
            assert executor.experiment_runs()[0].status == "running", "the first run ended"
        await trio.sleep(0.01)
    return found[0]


def slow_run_then_quick_one(tmp_path: Path, slow_steps: int) -> list[Path]:
    slow = write_experiment(tmp_path, "slow", environment=SLOW, max_iter=slow_steps)
    return [slow, write_experiment(tmp_path, "quick")]


def slow_and_quick_runs(tmp_path: Path, slow_steps: int) -> list[ExperimentRun]:
    """The runs as written (`load_run` would write them again, with its defaults)."""
    return [load_experiment_runs(path)[0] for path in slow_run_then_quick_one(tmp_path, slow_steps)]


async def test_the_next_run_goes_to_the_governor_started_ahead(tmp_path: Path) -> None:
    slow, quick = slow_and_quick_runs(tmp_path, 300)
    with trio.fail_after(60):
        async with open_executor(1, f"sqlite:///{tmp_path / 'runs.db'}") as executor:
            executor.schedule([slow, quick])
            ahead = await a_governor_ahead(os.getpid(), executor)
            assert executor.experiment_runs()[1].status == "scheduled"
    infos = executor.experiment_runs()
    assert [info.status for info in infos] == ["finished", "finished"]
    assert infos[0].steps == 300, "the first run is the slow one"
    assert infos[1].pid == ahead, "the quick run ran in the governor started ahead"
    assert stored_rows(tmp_path / "runs.db", infos[1].instance_uid) == (10, 10)


async def test_a_governor_killed_before_use_is_replaced(tmp_path: Path) -> None:
    slow, quick = slow_and_quick_runs(tmp_path, 300)
    with trio.fail_after(60):
        async with open_executor(1, f"sqlite:///{tmp_path / 'runs.db'}") as executor:
            executor.schedule([slow, quick])
            ahead = await a_governor_ahead(os.getpid(), executor)
            proctree.kill([ahead])
    infos = executor.experiment_runs()
    assert [info.status for info in infos] == ["finished", "finished"], infos[1].reason
    assert infos[1].pid != ahead
    assert stored_rows(tmp_path / "runs.db", infos[1].instance_uid) == (10, 10)


class DyingSecondGovernor(SecondLaunchDiffers):
    """Its second child is no governor: it exits after `life` seconds, never answering."""

    def __init__(self, life: float) -> None:
        super().__init__()
        self.life = life

    def second(self, argv: Sequence[str]) -> Sequence[str]:
        return [sys.executable, "-c", f"import time; time.sleep({self.life}); exit(7)"]


async def test_a_run_whose_governor_dies_before_answering_gets_another(tmp_path: Path) -> None:
    # The slow run outlasts nothing: the quick one takes the doomed governor while it
    # still lives and sends it the start request, which it never answers.
    slow, quick = slow_and_quick_runs(tmp_path, 20)
    launcher = DyingSecondGovernor(life=3.0)
    with trio.fail_after(60):
        async with open_executor(
            1, f"sqlite:///{tmp_path / 'runs.db'}", launcher=launcher
        ) as executor:
            executor.schedule([slow, quick])
    infos = executor.experiment_runs()
    assert [info.status for info in infos] == ["finished", "finished"], infos[1].reason
    assert launcher.launches == 3
    assert stored_rows(tmp_path / "runs.db", infos[1].instance_uid) == (10, 10)


async def test_no_governor_is_started_ahead_for_a_single_run(tmp_path: Path) -> None:
    launches = []

    class Counting(LocalLauncher):
        async def run(self, argv: Sequence[str], **options: object) -> ChildExit:
            launches.append(list(argv))
            return await super().run(argv, **options)  # type: ignore[arg-type]

    with trio.fail_after(60):
        executor = Executor(
            2,
            store_uri=f"sqlite:///{tmp_path / 'runs.db'}",
            handle_signals=False,
            launcher=Counting(env=governor_environment()),
        )
        executor.schedule(load_run(tmp_path, "alone"))
        await executor.execute()
    assert [info.status for info in executor.experiment_runs()] == ["finished"]
    assert len(launches) == 1


async def test_a_governor_started_ahead_dies_with_a_killed_executor(tmp_path: Path) -> None:
    files = slow_run_then_quick_one(tmp_path, 10**6)
    executor = await trio.lowlevel.open_process(
        [
            sys.executable,
            str(HERE / "run_executor.py"),
            str(tmp_path / "runs.db"),
            *map(str, files),
        ],
        stdout=subprocess.PIPE,
        cwd=HERE,
    )
    try:
        with trio.fail_after(60):
            await wait_for_steps(executor, 3)  # the slow run runs: the other waits ahead
            ahead = await a_governor_ahead(executor.pid)
            running = [pid for pid in proctree.descendants(executor.pid) if pid != ahead]
        executor.send_signal(signal.SIGKILL)
        with trio.fail_after(2):
            while any(proctree.is_alive(pid) for pid in [ahead, *running]):
                await trio.sleep(0.005)
    finally:
        await stop_process(executor)


async def test_a_sweep_through_the_command_line_stores_every_run_once(tmp_path: Path) -> None:
    runs, steps = 12, 10
    files = [write_experiment(tmp_path, f"sweep-{i:02}", max_iter=steps) for i in range(runs)]
    db = tmp_path / "runs.db"
    command = [sys.executable, "-m", "palaestrio", "experiment-start", "--plain", "-p", "2"]
    with trio.fail_after(90):
        done = await trio.run_process(
            [*command, "--store", f"sqlite:///{db}", *map(str, files)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    with sqlite3.connect(db) as connection:
        statuses = connection.execute("SELECT status FROM experiment_run_instances").fetchall()
        (world_states,) = connection.execute("SELECT count(*) FROM world_states").fetchone()
        (actions,) = connection.execute("SELECT count(*) FROM muscle_actions").fetchone()
    assert statuses == [("finished",)] * runs
    assert (world_states, actions) == (runs * steps, runs * steps)


async def test_a_run_of_the_dummies_loads_no_gymnasium_numpy_or_sqlalchemy(
    tmp_path: Path,
) -> None:
    run = load_run(tmp_path, "lean", environment=SLOW, max_iter=10**6)
    with trio.fail_after(60):
        async with open_executor(1, f"sqlite:///{tmp_path / 'runs.db'}") as executor:
            executor.schedule(run)
            (info,) = executor.experiment_runs()
            while info.steps < 3:
                await trio.sleep(0.01)
            assert info.pid is not None
            maps = Path(f"/proc/{info.pid}/maps").read_text()
            executor.shutdown()
    assert "zmq" in maps, "the check must see the governor's extension modules"
    for heavy in ("numpy", "sqlalchemy", "gymnasium"):
        assert heavy not in maps
