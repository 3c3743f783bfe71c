"""`experiment-start --resume` (issue 16): after a ^C, the same files and store run only
what has no finished instance yet, and the batch ends whole, nothing stored twice."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from pathlib import Path

import trio

from conftest import GUARD
from executor_support import stored_rows, write_experiment
from test_cli_process import PYTHON_M, environment, palaestrio, runs_in

RUNS = 20
STEPS = 30


def write_runs(directory: Path, count: int) -> None:
    directory.mkdir()
    for index in range(count):
        write_experiment(
            directory,
            f"run-{index:02}",
            environment="executor_components:SlowEnvironment",
            max_iter=STEPS,
        )


def started_since_first_finished(output: bytes) -> bool:
    """A run went `running` after the first run finished: it has a whole run's time to
    go (the parallel runs of a batch can all end within milliseconds of each other)."""
    lines = output.decode(errors="replace").splitlines()
    first = next((i for i, line in enumerate(lines) if "): finished" in line), len(lines))
    return any("): running" in line for line in lines[first:])


async def interrupt_after(
    cwd: Path, runs_dir: Path, finished: int, signum: signal.Signals, *, running: bool = False
) -> tuple[int, str]:
    """`experiment-start -p 4 runs_dir` sent `signum` once `finished` runs finished (and,
    with `running`, once a run started after the first one finished); its exit status
    and output."""
    process = await trio.lowlevel.open_process(
        [*PYTHON_M, "experiment-start", "--plain", "-p", "4", str(runs_dir)],
        cwd=cwd,
        env=environment(XDG_CONFIG_HOME=str(cwd / "xdg")),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    output = b""
    try:
        with trio.fail_after(90):
            async for chunk in process.stdout:
                output += chunk
                if output.count(b"): finished") >= finished and (
                    not running or started_since_first_finished(output)
                ):
                    break
            process.send_signal(signum)
            async for chunk in process.stdout:
                output += chunk
            await process.wait()
    finally:
        process.kill()
        with trio.move_on_after(5, shield=True):
            await process.wait()
        await process.stdout.aclose()
    return process.returncode, output.decode()


async def test_a_batch_interrupted_by_sigint_then_resumed_ends_whole(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    write_runs(runs_dir, RUNS)
    returncode, output = await interrupt_after(tmp_path, runs_dir, 5, signal.SIGINT)
    assert returncode == 130, output[-2000:]
    db = tmp_path / "palaestrio.db"
    interrupted = runs_in(db)
    finished_before = {uid for uid, _, status in interrupted if status == "finished"}
    assert 5 <= len(finished_before) < RUNS
    assert {status for uid, _, status in interrupted if uid not in finished_before} == {"cancelled"}

    resumed = palaestrio(tmp_path, "experiment-start", "--plain", "-p", "4", "--resume", runs_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    skipped = len(finished_before)
    assert f"resume: {skipped} of {RUNS} run(s) finished already" in resumed.stdout
    assert f"running {RUNS - skipped}" in resumed.stdout

    every = runs_in(db)
    finished = [(uid, instance) for uid, instance, status in every if status == "finished"]
    assert sorted(uid for uid, _ in finished) == [f"run-{index:02}" for index in range(RUNS)]
    assert len(every) == len(interrupted) + RUNS - skipped  # the skipped ran no instance
    for _, instance in finished:
        assert stored_rows(db, instance) == (STEPS, STEPS)
    with sqlite3.connect(db) as connection:
        (run_rows,) = connection.execute("SELECT count(*) FROM experiment_runs").fetchone()
        (duplicates,) = connection.execute(
            """SELECT count(*) FROM (SELECT environment_id, episode, step_index FROM world_states
               GROUP BY environment_id, episode, step_index HAVING count(*) > 1)"""
        ).fetchone()
    connection.close()
    assert (run_rows, duplicates) == (RUNS, 0)

    again = palaestrio(tmp_path, "experiment-start", "--plain", "--resume", runs_dir)
    assert again.returncode == 0
    assert f"resume: {RUNS} of {RUNS} run(s) finished already" in again.stdout
    assert len(runs_in(db)) == len(every)


async def test_after_the_executor_was_killed_resume_marks_its_runs_then_reruns_them(
    tmp_path: Path,
) -> None:
    runs_dir = tmp_path / "runs"
    write_runs(runs_dir, 6)
    before = GUARD.snapshot()
    # Killed while a run is running, not just as the first batch ends.
    returncode, _ = await interrupt_after(tmp_path, runs_dir, 1, signal.SIGKILL, running=True)
    assert returncode == -signal.SIGKILL
    # The store process and the governors outlive the executor by milliseconds (their
    # lifelines): a run may still end meanwhile. Read the store once they are gone.
    assert GUARD.leftovers(before) == []
    db = tmp_path / "palaestrio.db"
    left = runs_in(db)
    finished_before = [uid for uid, _, status in left if status == "finished"]
    assert "running" in {status for *_, status in left}  # what the dead executor left

    resumed = palaestrio(tmp_path, "experiment-start", "--plain", "-p", "4", "--resume", runs_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resume: {len(finished_before)} of 6 run(s) finished already" in resumed.stdout
    after = runs_in(db)
    assert sorted(uid for uid, _, status in after if status == "finished") == [
        f"run-{index:02}" for index in range(6)
    ]
    earlier = {instance: status for _, instance, status in left}
    assert {status for _, instance, status in after if earlier.get(instance) == "running"} == {
        "error"
    }


def test_resume_on_a_store_the_killed_executor_never_created_runs_everything(
    tmp_path: Path,
) -> None:
    """An executor killed while it created its SQLite store leaves an empty file, which
    `experiment-start` takes (it creates the tables): `--resume` must take it too."""
    runs_dir = tmp_path / "runs"
    write_runs(runs_dir, 2)
    (tmp_path / "palaestrio.db").touch()
    resumed = palaestrio(tmp_path, "experiment-start", "--plain", "-p", "2", "--resume", runs_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "holds no runs yet; running every run" in resumed.stdout
    finished = [
        uid for uid, _, status in runs_in(tmp_path / "palaestrio.db") if status == "finished"
    ]
    assert sorted(finished) == ["run-00", "run-01"]
