"""No orphan, no ghost run: the executor's promise under SIGKILL, SIGHUP, a stubborn
governor, a failing launcher and runs scheduled while others execute."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from executor_support import (
    SecondLaunchDiffers,
    load_run,
    start_executor_process,
    stop_process,
    stored_status,
    wait_for_file,
    wait_for_steps,
    write_experiment,
)
from palaestrio import messages, proctree
from palaestrio.executor import (
    Executor,
    ExecutorError,
    ExecutorState,
    open_executor,
)
from palaestrio.executor.supervisor import governor_environment
from palaestrio.mdp.client import open_client

COMPONENTS = "supervision_components"
SLOW = "executor_components:SlowEnvironment"


def store_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


async def all_dead(pids: Sequence[int]) -> None:
    while any(proctree.is_alive(pid) for pid in pids):
        await trio.sleep(0.002)


def escaping_run_file(tmp_path: Path, uid: str, pid_file: Path, max_iter: int) -> Path:
    return write_experiment(
        tmp_path,
        uid,
        environment=f"{COMPONENTS}:EscapingEnvironment",
        environment_params=f"{{pid_file: {pid_file}}}",
        max_iter=max_iter,
    )


async def runs_list(tmp_path: Path) -> dict[str, str]:
    """`palaestrio runs list`: each instance's status."""
    command = ["runs", "list", "--json", "--store", store_uri(tmp_path)]
    done = await trio.run_process(
        [sys.executable, "-m", "palaestrio", *command],
        capture_stdout=True,
        capture_stderr=True,
    )
    return {run["instance_uid"]: run["status"] for run in json.loads(done.stdout)}


# -- the executor dies ---------------------------------------------------------------


@pytest.mark.parametrize("kill_with", [signal.SIGKILL, signal.SIGHUP])
async def test_every_run_process_dies_with_the_executor(
    tmp_path: Path, kill_with: signal.Signals
) -> None:
    pid_file = tmp_path / "pids"
    doomed = await start_executor_process(
        tmp_path, escaping_run_file(tmp_path, "doomed", pid_file, 1_000_000)
    )
    survivor = None
    try:
        with trio.fail_after(60):
            doomed_instance = await wait_for_steps(doomed, 5)
            pids = [int(pid) for pid in (await wait_for_file(pid_file)).split()]
            # Another executor on the same store, alive throughout.
            survivor = await start_executor_process(
                tmp_path, write_experiment(tmp_path, "survivor", environment=SLOW, max_iter=10**6)
            )
            survivor_instance = await wait_for_steps(survivor, 5)
        governor, escaped, daemon = pids
        assert proctree.is_alive(escaped) and proctree.is_alive(daemon)
        assert governor in proctree.descendants(doomed.pid)
        doomed.send_signal(kill_with)
        sent = time.monotonic()
        with trio.fail_after(1.0):
            await all_dead(pids)
        took = time.monotonic() - sent
        with trio.fail_after(30):
            await doomed.wait()
            listing = await runs_list(tmp_path)
        db = tmp_path / "runs.db"
        status, reason = stored_status(db, doomed_instance)
        if kill_with is signal.SIGKILL:
            # `runs list` found the ghost and said so, in the store too.
            assert listing[doomed_instance] == "error"
            assert (status, (reason or "").split(" (")[0]) == ("error", "executor lost")
        else:
            assert doomed.returncode == 129
            assert status == "cancelled", reason
        assert stored_status(db, survivor_instance)[0] == "running"
        print(f"run processes gone {took * 1000:.0f} ms after {kill_with.name}")
    finally:
        if survivor is not None:
            survivor.send_signal(signal.SIGINT)
            with trio.move_on_after(30):
                await survivor.wait()
            await stop_process(survivor)
        await stop_process(doomed)
    assert survivor.returncode == 130
    assert stored_status(tmp_path / "runs.db", survivor_instance)[0] == "cancelled"


async def test_second_sigint_kills_a_deaf_governor_at_once(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    run_file = write_experiment(
        tmp_path,
        "deaf",
        environment=f"{COMPONENTS}:DeafEnvironment",
        environment_params=f"{{pid_file: {pid_file}}}",
    )
    process = await start_executor_process(tmp_path, run_file, env={"CANCEL_GRACE": "30"})
    try:
        with trio.fail_after(60):
            governor = int(await wait_for_file(pid_file))
        process.send_signal(signal.SIGINT)
        await trio.sleep(0.3)
        assert process.returncode is None, "the first ^C must wait for the deaf governor"
        assert proctree.is_alive(governor)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        with trio.fail_after(5):
            await process.wait()
        took = time.monotonic() - sent
    finally:
        await stop_process(process)
    assert process.returncode == 130
    print(f"exit {took * 1000:.0f} ms after the second ^C")
    assert took <= 1.0, f"the executor took {took:.2f} s to exit after the second ^C"
    assert not proctree.is_alive(governor)


# -- a setsid() grandchild never outlives its run ------------------------------------


@pytest.mark.parametrize("ending", ["finished", "cancelled"])
async def test_setsid_grandchildren_die_with_their_run(tmp_path: Path, ending: str) -> None:
    pid_file = tmp_path / "pids"
    max_iter = 20 if ending == "finished" else 1_000_000
    run = load_run(
        tmp_path,
        "escaping",
        environment=f"{COMPONENTS}:EscapingEnvironment",
        environment_params=f"{{pid_file: {pid_file}}}",
        max_iter=max_iter,
    )
    with trio.fail_after(60):
        async with open_executor(1, store_uri(tmp_path)) as executor:
            executor.schedule(run)
            pids = [int(pid) for pid in (await wait_for_file(pid_file)).split()]
            if ending == "cancelled":
                await executor.cancel("escaping")
    (info,) = executor.experiment_runs()
    assert info.status == ending, info.reason
    assert not [pid for pid in pids if proctree.is_alive(pid)]


# -- intake ---------------------------------------------------------------------------


async def test_runs_scheduled_during_execute_run_too(tmp_path: Path) -> None:
    executor = Executor(1, store_uri=store_uri(tmp_path), handle_signals=False)
    executor.schedule(load_run(tmp_path, "first", environment=SLOW, max_iter=50))

    async def schedule_later() -> None:
        while executor.experiment_runs()[0].status != "running":
            await trio.sleep(0.01)
        executor.schedule(load_run(tmp_path, "second"))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(schedule_later)
            state = await executor.execute()
    assert state is ExecutorState.EXITED
    infos = executor.experiment_runs()
    assert [(i.experiment_run.uid, i.status) for i in infos] == [
        ("first", "finished"),
        ("second", "finished"),
    ]
    with pytest.raises(ExecutorError, match="ended"):
        executor.schedule(load_run(tmp_path, "too-late"))
    assert len(executor.experiment_runs()) == 2
    with sqlite3.connect(tmp_path / "runs.db") as db:
        stored = db.execute("SELECT status FROM experiment_run_instances").fetchall()
    assert sorted(stored) == [("finished",), ("finished",)]


# -- one run's failure is that run's ------------------------------------------------------


class FailingSecondLaunch(SecondLaunchDiffers):
    """Cannot spawn its second child, as when the system is out of file descriptors."""

    def second(self, argv: Sequence[str]) -> Sequence[str]:
        raise OSError(24, "Too many open files (test)")


async def test_a_launcher_error_fails_only_its_run(tmp_path: Path) -> None:
    runs = [load_run(tmp_path, f"run-{i}") for i in range(3)]
    with trio.fail_after(60):
        async with open_executor(
            1, store_uri(tmp_path), launcher=FailingSecondLaunch()
        ) as executor:
            executor.schedule(runs)
    statuses = [(i.status, i.reason) for i in executor.experiment_runs()]
    assert [s for s, _ in statuses] == ["finished", "error", "finished"], statuses
    reason = statuses[1][1]
    assert reason is not None and "Too many open files" in reason and "\n" not in reason
    failed = executor.experiment_runs()[1]
    assert stored_status(tmp_path / "runs.db", failed.instance_uid) == ("error", reason)


# -- parallel runs overlap -----------------------------------------------------------------


@pytest.mark.parametrize("parallel", [1, 2])
async def test_parallel_runs_overlap_in_time(tmp_path: Path, parallel: int) -> None:
    log = tmp_path / "times"
    runs = [
        load_run(
            tmp_path,
            f"timed-{i}",
            environment=f"{COMPONENTS}:TimedEnvironment",
            environment_params=f"{{log_file: {log}, delay: 0.05}}",
            max_iter=20,
        )
        for i in range(2)
    ]
    with trio.fail_after(60):
        async with open_executor(parallel, store_uri(tmp_path)) as executor:
            executor.schedule(runs)
    assert [i.status for i in executor.experiment_runs()] == ["finished", "finished"]
    times: dict[str, dict[str, float]] = {}
    for line in log.read_text().splitlines():
        pid, what, when = line.split()
        times.setdefault(pid, {})[what] = float(when)
    (a, b) = times.values()
    overlap = min(a["end"], b["end"]) - max(a["start"], b["start"])
    if parallel == 2:
        assert overlap > 0.5, f"the two runs overlapped {overlap:.2f} s only"
    else:
        assert overlap < 0, "with one run at a time the runs must not overlap"


# -- a governor from another executor cannot write into this one's store ---------------


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_stray_governor_is_refused_by_the_store_and_exits(tmp_path: Path) -> None:
    """A governor that outlived its executor and reached the next one's broker on the
    same fixed TCP endpoint (it once wrote 360,000 rows into a dead run)."""
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    run = load_run(tmp_path, "stray", environment=SLOW, max_iter=100_000)
    env = governor_environment()
    argv = ["--broker", endpoint, "--governor-id", "stray", "--instance", "not-ours"]
    with trio.fail_after(60):
        async with open_executor(1, store_uri(tmp_path), broker_uri=endpoint):
            stray = await trio.lowlevel.open_process(
                [sys.executable, "-m", "palaestrio.governor", *argv, "--run-uid", "stray"],
                env=env,
                stderr=subprocess.PIPE,
            )
            try:
                async with open_client(endpoint) as client:
                    request = messages.ExperimentRunStartRequest("not-ours", run)
                    await client.request("governor.stray", messages.encode(request))
                await stray.wait()
            finally:
                await stop_process(stray)
                assert stray.stderr is not None
                stderr = b"".join([chunk async for chunk in stray.stderr]).decode()
                await stray.stderr.aclose()
    assert stray.returncode == 3, stderr
    assert "refuses" in stderr
    with sqlite3.connect(tmp_path / "runs.db") as db:
        assert db.execute("SELECT count(*) FROM experiment_run_instances").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM world_states").fetchone() == (0,)
