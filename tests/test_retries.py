"""Retries (issue 16): a run that ended `error` runs again as a new instance linked to
the first, after a back-off; never a cancelled run, never once the executor stops."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio

from executor_support import load_run, write_experiment
from palaestrio.executor import ExperimentRunRuntimeInformation, final_attempts, open_executor
from palaestrio.executor.options import ExecutorOptions
from test_cli_process import palaestrio

COMPONENTS = "executor_components"


def attempts_in(db: Path) -> list[tuple[str, str, int, str | None]]:
    """(instance uid, status, attempt, retry_of) of every instance, in creation order."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT uid, status, attempt, retry_of FROM experiment_run_instances ORDER BY id"
        ).fetchall()
    connection.close()
    return rows


async def test_a_run_failing_its_first_attempt_finishes_on_the_retry(tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"
    run = load_run(
        tmp_path,
        "flaky",
        environment=f"{COMPONENTS}:FailOnceEnvironment",
        environment_params=f"{{marker: {marker}}}",
    )
    with trio.fail_after(60):
        async with open_executor(
            1, f"sqlite:///{tmp_path / 'runs.db'}", retries=1, retry_backoff=0.05
        ) as executor:
            executor.schedule(run)
    (first, second) = attempts_in(tmp_path / "runs.db")
    assert first[1:] == ("error", 1, None)
    assert second[1:] == ("finished", 2, first[0])
    infos = executor.experiment_runs()
    assert [info.status for info in infos] == ["error", "finished"]
    assert infos[0].retried_by == second[0]
    assert [info.instance_uid for info in final_attempts(infos)] == [second[0]]


async def test_retries_end_after_n_attempts_with_growing_back_off(tmp_path: Path) -> None:
    run = load_run(tmp_path, "broken", environment=f"{COMPONENTS}:FailingEnvironment")
    with trio.fail_after(60):
        async with open_executor(
            2, f"sqlite:///{tmp_path / 'runs.db'}", retries=2, retry_backoff=0.3
        ) as executor:
            executor.schedule(run)
    rows = attempts_in(tmp_path / "runs.db")
    assert [(status, attempt) for _, status, attempt, _ in rows] == [
        ("error", 1),
        ("error", 2),
        ("error", 3),
    ]
    assert {retry_of for *_, retry_of in rows[1:]} == {rows[0][0]}
    infos = executor.experiment_runs()
    for earlier, later, wait in ((infos[0], infos[1], 0.3), (infos[1], infos[2], 0.6)):
        assert earlier.ended_at is not None and later.started_at is not None
        assert (later.started_at - earlier.ended_at).total_seconds() >= wait


def test_the_back_off_doubles_up_to_its_cap() -> None:
    options = ExecutorOptions(retry_backoff=1.0, retry_backoff_max=5.0)
    assert [options.retry_delay(attempt) for attempt in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


async def test_a_cancelled_run_is_not_retried(tmp_path: Path) -> None:
    slow = load_run(tmp_path, "slow", environment=f"{COMPONENTS}:SlowEnvironment", max_iter=100_000)
    stepping = trio.Event()

    def watch(info: ExperimentRunRuntimeInformation) -> None:
        if info.steps >= 3:
            stepping.set()

    with trio.fail_after(60):
        async with open_executor(
            1, f"sqlite:///{tmp_path / 'runs.db'}", retries=3, retry_backoff=0, on_update=watch
        ) as executor:
            executor.schedule(slow)
            await stepping.wait()
            await executor.cancel("slow")
    assert [row[1:] for row in attempts_in(tmp_path / "runs.db")] == [("cancelled", 1, None)]


async def test_a_retry_waiting_when_the_executor_shuts_down_ends_cancelled(
    tmp_path: Path,
) -> None:
    run = load_run(tmp_path, "broken", environment=f"{COMPONENTS}:FailingEnvironment")
    retry_waits = trio.Event()

    def watch(info: ExperimentRunRuntimeInformation) -> None:
        if info.attempt == 2:
            retry_waits.set()

    with trio.fail_after(60):
        async with open_executor(
            1, f"sqlite:///{tmp_path / 'runs.db'}", retries=5, retry_backoff=30, on_update=watch
        ) as executor:
            executor.schedule(run)
            await retry_waits.wait()
            executor.shutdown()
    rows = attempts_in(tmp_path / "runs.db")
    assert [row[1:3] for row in rows] == [("error", 1), ("cancelled", 2)]


def test_experiment_start_retries_and_the_attempts_in_runs_list_and_show(tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"
    run_file = write_experiment(
        tmp_path,
        "flaky",
        environment=f"{COMPONENTS}:FailOnceEnvironment",
        environment_params=f"{{marker: {marker}}}",
    )
    failed = palaestrio(
        tmp_path, "experiment-start", "--plain", run_file, "--store", "sqlite:///a.db"
    )
    assert failed.returncode == 1
    assert [row[1:] for row in attempts_in(tmp_path / "a.db")] == [("error", 1, None)]

    marker.unlink()
    retried = palaestrio(
        tmp_path, "experiment-start", "--retries", "1", run_file, PALAESTRIO_RETRY_BACKOFF="0.05"
    )
    assert retried.returncode == 0, retried.stdout + retried.stderr
    (first, second) = attempts_in(tmp_path / "palaestrio.db")
    assert (first[1], second[1:]) == ("error", ("finished", 2, first[0]))
    listing = palaestrio(tmp_path, "runs", "list")
    assert "attempt" in listing.stdout
    shown = palaestrio(tmp_path, "runs", "show", "flaky")
    assert f"2 (retry of {first[0]})" in shown.stdout
