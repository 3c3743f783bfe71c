"""The chaos suite's own checks (benchmarks/chaos): each invariant flags a violation
planted into a real store or a real process table, and passes the same store intact."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from executor_support import write_experiment
from leak_guard import TAG_VARIABLE, LeakGuard
from palaestrio import proctree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from chaos import faults
from chaos.invariants import Outcome, check
from chaos.iteration import Bounds, locked_while_stopping, run_iteration
from chaos.plan import Fault, Plan, RunPlan
from chaos.resume import check_resumed

STEPS = 12
PLAN = Plan(0, [RunPlan("solo", max_iter=STEPS, episodes=1)], parallel=1)


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store holding one finished run of `STEPS` steps, and what the CLI printed."""
    directory = tmp_path_factory.mktemp("store")
    run_file = write_experiment(directory, "solo", max_iter=STEPS)
    db = directory / "runs.db"
    argv = [sys.executable, "-m", "palaestrio", "experiment-start", "--plain"]
    done = subprocess.run(
        [*argv, "--store", f"sqlite:///{db}", str(run_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, XDG_CONFIG_HOME=str(directory)),
        cwd=directory,
    )
    assert done.returncode == 0, done.stderr
    return db, done.stdout


@pytest.fixture
def store(finished_store: tuple[Path, str], tmp_path: Path) -> Path:
    db = tmp_path / "runs.db"
    shutil.copy(finished_store[0], db)
    return db


def outcome(db: Path, stdout: str, **observed: object) -> Outcome:
    return Outcome(PLAN, db, **{"returncode": 0, "stdout": stdout, **observed})  # type: ignore[arg-type]


def kinds(found: Outcome) -> list[str]:
    return [violation.kind for violation in check(found, exit_bound=10.0)]


def test_an_intact_store_passes(store: Path, finished_store: tuple[Path, str]) -> None:
    assert "solo (" in finished_store[1] and f"finished, {STEPS} steps" in finished_store[1]
    assert kinds(outcome(store, finished_store[1])) == []


def test_a_duplicate_row_is_flagged(store: Path, finished_store: tuple[Path, str]) -> None:
    with sqlite3.connect(store) as connection:
        connection.execute("DROP INDEX ux_world_states_environment_episode_step")
        columns = "walltime, episode, step_index, done, environment_id"
        connection.execute(
            f"INSERT INTO world_states ({columns}) SELECT {columns} FROM world_states LIMIT 1"
        )
    found = kinds(outcome(store, finished_store[1]))
    # Counted twice, the run also looks as if it had a step too many.
    assert "duplicate-rows" in found


def test_a_finished_run_with_missing_steps_is_flagged(
    store: Path, finished_store: tuple[Path, str]
) -> None:
    with sqlite3.connect(store) as connection:
        connection.execute("DELETE FROM world_states WHERE step_index = 3")
    found = kinds(outcome(store, finished_store[1]))
    assert "finished-incomplete" in found
    assert "acknowledged-missing" in found  # the CLI said 12 steps, 11 are stored
    assert "success-for-lost-data" in found  # and it exited 0


def test_a_run_left_running_is_flagged_unless_the_executor_was_killed(store: Path) -> None:
    with sqlite3.connect(store) as connection:
        connection.execute("UPDATE experiment_run_instances SET status = 'running'")
    assert "stuck-status" in kinds(outcome(store, "", returncode=1))
    assert kinds(outcome(store, "", returncode=-9, executor_killed=True, signals={9})) == []
    # A full or read-only database cannot take the status; the failed exit says it.
    assert kinds(outcome(store, "", returncode=1, unwritable=True)) == []


def test_a_lock_counts_as_unwritable_only_if_held_while_the_executor_stopped() -> None:
    # Iteration 166 of seed 20261204: locked at 1.94 s for 6.7 s, SIGTERM at 2.00 s.
    assert locked_while_stopping((1.94, 8.64), stopped_at=2.0, exited=2.7)
    assert locked_while_stopping((2.5, 3.0), stopped_at=2.0, exited=2.7)
    assert not locked_while_stopping((0.5, 1.9), stopped_at=2.0, exited=2.7)  # released
    assert not locked_while_stopping((2.8, 3.0), stopped_at=2.0, exited=2.7)  # after exit
    assert not locked_while_stopping((1.94, 8.64), stopped_at=None, exited=9.0)
    assert not locked_while_stopping(None, stopped_at=2.0, exited=2.7)


def test_success_with_the_store_file_gone_is_flagged(store: Path) -> None:
    store.unlink()
    assert kinds(outcome(store, "")) == ["success-for-lost-data"]
    assert kinds(outcome(store, "", returncode=1)) == []
    # Unless the batch was stored whole before the file was deleted (the deletion came
    # between the last acknowledged write and the exit).
    assert kinds(outcome(store, "", finished_at_deletion={"solo": STEPS})) == []
    partial = outcome(store, "", finished_at_deletion={"solo": STEPS - 1})
    assert kinds(partial) == ["success-for-lost-data"]


def test_the_deletion_fault_notes_what_the_store_held(store: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        scene = faults.Scene(process, store.parent, store, started=0.0)
        faults.db_deleted(scene, Fault("db-deleted", 0.0, seed=1))
    finally:
        process.kill()
        process.wait()
    assert not store.exists()
    assert scene.finished_at_deletion == {"solo": STEPS}


def test_exit_problems_are_flagged(store: Path, finished_store: tuple[Path, str]) -> None:
    stdout = finished_store[1]
    assert kinds(outcome(store, stdout, exit_seconds=10.5)) == ["exit-slow"]
    assert kinds(outcome(store, stdout, returncode=None)) == ["no-exit"]
    interrupted = outcome(store, stdout, returncode=-signal.SIGINT, signals={signal.SIGINT})
    assert kinds(interrupted) == ["died-by-signal"]
    bus_error = outcome(store, stdout, returncode=-signal.SIGBUS)
    assert kinds(bus_error) == ["died-by-signal"]
    # Before any palaestrio code ran (no store yet), a ^C ends Python's start-up.
    started = outcome(store, "", returncode=-signal.SIGINT, signals={signal.SIGINT})
    started.store_created = False
    assert kinds(started) == []
    started.stderr = 'Traceback:\n File "/x/palaestrio/cli/__init__.py"\nKeyboardInterrupt'
    assert kinds(started) == ["died-by-signal", "traceback"]
    # SIGTERM and SIGHUP have exit statuses of their own once palaestrio runs.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        stopped = outcome(store, stdout, returncode=-signum, signals={signum})
        assert kinds(stopped) == ["died-by-signal"]
        stopped.store_created = False
        stopped.stdout = ""
        assert kinds(stopped) == []  # in Python's own start-up
    killed = outcome(store, stdout, returncode=-signal.SIGKILL, signals={signal.SIGKILL})
    assert kinds(killed) == []
    assert kinds(outcome(store, stdout, stderr="Traceback (most recent call last):")) == [
        "traceback"
    ]


def test_a_leftover_process_is_found_and_flagged(
    store: Path, finished_store: tuple[Path, str]
) -> None:
    guard = LeakGuard()
    before = guard.snapshot()
    tag = "chaos-harness-test"
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env=dict(os.environ, **{TAG_VARIABLE: tag}),
        start_new_session=True,
    )
    try:
        left = guard.leftovers(before, tag)
        assert [pid for pid, _ in left] == [sleeper.pid]
        assert kinds(outcome(store, finished_store[1], leftovers=left)) == ["leftover-process"]
    finally:
        proctree.kill([sleeper.pid])
        sleeper.wait()


def test_an_interrupted_iteration_ends_clean(tmp_path: Path) -> None:
    """A real iteration: two runs through experiment-start, SIGINT once a run steps."""
    plan = Plan(
        0,
        [RunPlan("a", max_iter=400, episodes=1), RunPlan("b", max_iter=400, episodes=1)],
        parallel=2,
        faults=[Fault("hang", delay=0.5)],
    )
    plan.runs[0] = RunPlan("a", max_iter=400, episodes=1, hang_at=30)
    result = run_iteration(
        plan, tmp_path, "chaos-harness-e2e", Bounds(run=60, exit=10), LeakGuard()
    )
    assert result.outcome.returncode == 130, result.outcome.stderr
    assert result.outcome.hung_for is not None
    assert result.outcome.exit_seconds is not None and result.outcome.exit_seconds < 10
    assert result.violations == []  # hung 0.5 s: less than the steps have to be stored
    assert result.outcome.leftovers == []
    assert not (tmp_path / "iteration-0").exists()


def test_a_resume_leaving_a_run_unfinished_or_running_is_flagged(store: Path) -> None:
    assert check_resumed(PLAN, store, 0, "") == []
    with sqlite3.connect(store) as connection:
        connection.execute(
            """INSERT INTO experiment_run_instances (uid, status, experiment_run_id)
               SELECT 'second', 'running', experiment_run_id FROM experiment_run_instances"""
        )
        connection.execute(
            "UPDATE experiment_run_instances SET status = 'error' WHERE uid != 'second'"
        )
    found = [violation.kind for violation in check_resumed(PLAN, store, 1, "Error: x")]
    assert found == ["resume-failed", "resume-incomplete", "resume-stuck-status"]
    assert [v.kind for v in check_resumed(PLAN, store, None, "")] == ["resume-stalled"]


def test_under_nohup_the_executors_get_sighups_default() -> None:
    """The suite run with nohup once let every early SIGHUP pass unnoticed."""
    script = (
        "import signal, subprocess, sys\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "from leak_guard import unignore_hangup\n"
        "unignore_hangup()\n"
        "child = 'import signal; print(signal.getsignal(signal.SIGHUP) == signal.SIG_DFL)'\n"
        "subprocess.run([sys.executable, '-c', child], check=True)\n"
    )
    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    tests = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(benchmarks), str(tests)]))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.stdout.strip() == "True", done.stderr
