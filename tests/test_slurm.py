"""Governors as Slurm job steps on a real two-node Slurm (`nox -s slurm`; skipped
elsewhere): runs spread over both nodes, a cancel, the time-limit warning. Processes that
Slurm's daemons start are not pytest's descendants, so every test checks itself that
nothing carrying its tag (``PALAESTRIO_TEST_TAG``, passed on by srun) outlives it."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import slurm_cluster
from conftest import GUARD
from executor_support import (
    load_run,
    start_executor_process,
    stop_process,
    stored_status,
    wait_for_steps,
    write_experiment,
)
from leak_guard import TAG_VARIABLE, command_line, tagged
from palaestrio import proctree
from palaestrio.cli.slurm import batch_script
from palaestrio.executor import open_executor
from palaestrio.executor.slurm import SlurmBatchLauncher, SlurmStepLauncher
from palaestrio.executor.supervisor import governor_environment
from palaestrio.status import RunStatus
from test_supervision import runs_list

pytestmark = pytest.mark.skipif(
    slurm_cluster.available() is not None, reason=str(slurm_cluster.available())
)
SLOW = "executor_components:SlowEnvironment"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[slurm_cluster.Cluster]:
    started = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    GUARD.allow({process.pid for process in started.daemons.values()})
    try:
        yield started
    finally:
        started.stop()
        assert not slurm_cluster.stepds(), "a slurmstepd survived the cluster"


@pytest.fixture
def slurm(
    cluster: slurm_cluster.Cluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[slurm_cluster.Cluster]:
    """The cluster for one test, which must leave no step and no tagged process."""
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    stepds_before = set(slurm_cluster.stepds())
    yield cluster
    tag = os.environ[TAG_VARIABLE]
    deadline = time.monotonic() + 15
    # A step's slurmstepd is not tagged and daemonizes (so it is re-parented to pytest):
    # it may still be cleaning up after squeue stopped listing the step.
    while (
        (left := tagged(tag, proctree.parents()))
        or cluster.steps()
        or _step_stepds(set(slurm_cluster.stepds()) - stepds_before)
    ):
        if time.monotonic() > deadline:
            proctree.kill(left)
            raise AssertionError(f"left behind: processes {left}, steps {cluster.steps()}")
        time.sleep(0.1)


def _step_stepds(pids: set[int]) -> list[int]:
    """Those of `pids` that serve a job step ("slurmstepd: [12.0]"), not a job's extern
    or batch step, which live as long as their allocation."""
    found = []
    for pid in pids:
        name = command_line(pid)
        if name.startswith("slurmstepd: [") and name.rstrip("]").rsplit(".", 1)[-1].isdigit():
            found.append(pid)
    return found


def launcher() -> SlurmStepLauncher:
    return SlurmStepLauncher(cpus_per_run=1, env=governor_environment())


async def watch_nodes(cluster: slurm_cluster.Cluster, seen: set[str]) -> None:
    while True:
        for line in await trio.to_thread.run_sync(cluster.steps):
            seen.add(line.split()[-1])
        await trio.sleep(0.1)


async def test_runs_spread_over_both_nodes_and_one_is_cancelled(
    slurm: slurm_cluster.Cluster, tmp_path: Path
) -> None:
    runs = [
        load_run(
            tmp_path, f"step-{i}", environment=SLOW, environment_params="{delay: 0.02}", max_iter=50
        )
        for i in range(8)
    ]
    endless = load_run(tmp_path, "endless", environment=SLOW, max_iter=1_000_000)
    seen: set[str] = set()
    with trio.fail_after(120):
        async with trio.open_nursery() as watchers:
            watchers.start_soon(watch_nodes, slurm, seen)
            async with open_executor(
                4,
                f"sqlite:///{tmp_path / 'runs.db'}",
                broker_uri="tcp://127.0.0.1:*",
                curve=True,
                launcher=launcher(),
            ) as executor:
                executor.schedule([endless, *runs])
                (info, *_) = executor.experiment_runs()
                while info.status is not RunStatus.RUNNING:
                    await trio.sleep(0.05)
                started = trio.current_time()
                await executor.cancel("endless")
                print(f"cancel latency: {trio.current_time() - started:.3f} s")
            watchers.cancel_scope.cancel()
    statuses = [info.status for info in executor.experiment_runs()]
    assert statuses == [RunStatus.CANCELLED] + [RunStatus.FINISHED] * 8, statuses
    assert seen == {"n1", "n2"}, seen


async def test_slurms_time_limit_warning_is_a_graceful_stop(
    slurm: slurm_cluster.Cluster, tmp_path: Path
) -> None:
    run = load_run(tmp_path, "limited", environment=SLOW, max_iter=1_000_000)
    with trio.fail_after(60):
        async with open_executor(
            1,
            f"sqlite:///{tmp_path / 'runs.db'}",
            broker_uri="tcp://127.0.0.1:*",
            curve=True,
            launcher=launcher(),
        ) as executor:
            executor.schedule(run)
            (info,) = executor.experiment_runs()
            while info.status is not RunStatus.RUNNING or not info.steps:
                await trio.sleep(0.05)
            (step,) = [line.split()[0] for line in slurm.steps() if "palaestrio-limited-" in line]
            # What Slurm does 120 s before the limit (--signal=USR1@120).
            slurm.run("scancel", "--signal=USR1", step)
    assert (info.status, info.reason) == (RunStatus.CANCELLED, "time limit")
    assert info.steps > 0


async def test_sigkilled_executor_leaves_no_step(
    slurm: slurm_cluster.Cluster, tmp_path: Path
) -> None:
    """srun outlives a SIGKILLed executor; its governor does not outlive the broker's
    silence (interval × liveness), and the next look at the store marks the run."""
    run_file = write_experiment(tmp_path, "orphan", environment=SLOW, max_iter=1_000_000)
    env = {"PALAESTRIO_TEST_LAUNCHER": "slurm", "HEARTBEAT_INTERVAL": "1.0"}
    executor = await start_executor_process(tmp_path, run_file, env)
    try:
        with trio.fail_after(60):
            instance = await wait_for_steps(executor, 5)
            assert [line for line in slurm.steps() if "palaestrio-orphan-" in line]
            executor.kill()
            killed = trio.current_time()
            await executor.wait()
            while slurm.steps():
                await trio.sleep(0.05)
            print(f"steps gone {trio.current_time() - killed:.2f} s after SIGKILL")
            listing = await runs_list(tmp_path)
    finally:
        await stop_process(executor)
    assert listing[instance] == "error"
    status, reason = stored_status(tmp_path / "runs.db", instance)
    assert (status, (reason or "").split(" (")[0]) == ("error", "executor lost")


async def test_node_loss_fails_that_nodes_runs_only(
    slurm: slurm_cluster.Cluster, tmp_path: Path
) -> None:
    """Node n2 is lost (slurmd, slurmstepd and tasks SIGKILLed); srun would notice only
    after SlurmdTimeout, and then exit 0: the heartbeats decide."""
    runs = [
        load_run(
            tmp_path,
            f"lose-{i}",
            environment=SLOW,
            environment_params="{delay: 0.02}",
            max_iter=400,
        )
        for i in range(4)
    ]
    try:
        with trio.fail_after(90):
            async with open_executor(
                4,
                f"sqlite:///{tmp_path / 'runs.db'}",
                broker_uri="tcp://127.0.0.1:*",
                curve=True,
                launcher=launcher(),
                heartbeat_interval=1.0,
            ) as executor:
                executor.schedule(runs)
                infos = executor.experiment_runs()
                while not all(info.status is RunStatus.RUNNING for info in infos):
                    await trio.sleep(0.05)
                placed = {line.split()[1].split("-")[2]: line.split()[2] for line in slurm.steps()}
                assert sorted(placed.values()) == ["n1", "n1", "n2", "n2"], placed
                slurm.kill_node("n2")
                lost_at = trio.current_time()
                on_n2 = [i for i in infos if placed[i.experiment_run.uid.split("-")[1]] == "n2"]
                while not all(info.status.is_terminal for info in on_n2):
                    await trio.sleep(0.01)
                print(f"node loss detected after {trio.current_time() - lost_at:.2f} s")
    finally:
        try:
            await trio.to_thread.run_sync(slurm.revive, "n2")
        finally:
            GUARD.allow({slurm.daemons["n2"].pid})
    for info in infos:
        node = placed[info.experiment_run.uid.split("-")[1]]
        expected = RunStatus.FINISHED if node == "n1" else RunStatus.ERROR
        assert info.status is expected, (node, info.status, info.reason)
        if node == "n2":
            assert (info.reason or "").startswith("governor lost"), info.reason


async def test_batch_jobs_one_per_run(slurm: slurm_cluster.Cluster, tmp_path: Path) -> None:
    """`slurm-batch`: each governor a `sbatch --no-requeue` job; one finishes, one is
    cancelled (graceful MDP stop, scancel behind it)."""
    done = load_run(tmp_path, "batch-done", environment=SLOW, max_iter=50)
    endless = load_run(tmp_path, "batch-endless", environment=SLOW, max_iter=1_000_000)
    batch = SlurmBatchLauncher(output_dir=tmp_path, env=governor_environment())
    with trio.fail_after(90):
        async with open_executor(
            2,
            f"sqlite:///{tmp_path / 'runs.db'}",
            broker_uri="tcp://127.0.0.1:*",
            curve=True,
            launcher=batch,
        ) as executor:
            executor.schedule([done, endless])
            infos = executor.experiment_runs()
            while infos[1].status is not RunStatus.RUNNING:
                await trio.sleep(0.05)
            jobs = slurm.run("squeue", "--noheader", "-o", "%j")
            assert "palaestrio-batch-endless-" in jobs, jobs
            await executor.cancel("batch-endless")
    assert [info.status for info in infos] == [RunStatus.FINISHED, RunStatus.CANCELLED]


async def test_palaestrio_sbatch_script_runs_in_an_allocation(
    slurm: slurm_cluster.Cluster, tmp_path: Path
) -> None:
    """The README's way: `palaestrio sbatch FILES > job.sh; sbatch job.sh`. The executor
    runs in the batch step, its governors are steps of the allocation."""
    files = [write_experiment(tmp_path, f"alloc-{i}", max_iter=20) for i in range(2)]
    db = tmp_path / "runs.db"
    script = batch_script(files, parallel=2, cpus_per_run=1, time=None, store=f"sqlite:///{db}")
    (tmp_path / "job.sh").write_text(script)
    output = tmp_path / "job.out"
    job = slurm.run("sbatch", "--parsable", f"--output={output}", str(tmp_path / "job.sh"))
    with trio.fail_after(60):
        while slurm.run("squeue", "--noheader", "-j", job.strip()).strip():
            await trio.sleep(0.2)
    log = output.read_text()
    for file in files:
        uid = file.stem
        with sqlite3.connect(db) as connection:
            rows = connection.execute(
                "SELECT status FROM experiment_run_instances i JOIN experiment_runs r"
                " ON i.experiment_run_id = r.id WHERE r.uid = ?",
                (uid,),
            ).fetchall()
        assert rows == [("finished",)], (uid, rows, log)


async def test_slurms_reason_is_recorded(slurm: slurm_cluster.Cluster, tmp_path: Path) -> None:
    """Someone scancels the governor's job: the run is `error`, and Slurm's word on it
    (CANCELLED) is part of the reason, not just srun's exit status."""
    run = load_run(tmp_path, "scancelled", environment=SLOW, max_iter=1_000_000)
    with trio.fail_after(60):
        async with open_executor(
            1,
            f"sqlite:///{tmp_path / 'runs.db'}",
            broker_uri="tcp://127.0.0.1:*",
            curve=True,
            launcher=launcher(),
        ) as executor:
            executor.schedule(run)
            (info,) = executor.experiment_runs()
            while info.status is not RunStatus.RUNNING:
                await trio.sleep(0.05)
            (step,) = [
                line.split()[0] for line in slurm.steps() if "palaestrio-scancelled-" in line
            ]
            slurm.run("scancel", step.split(".")[0])
    assert info.status is RunStatus.ERROR
    assert "Slurm: CANCELLED" in (info.reason or ""), info.reason
