"""The executor end to end: real governor processes, real sockets, a real SQLite file."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import time
from pathlib import Path

import pytest
import trio
import zmq

from executor_support import (
    load_run,
    start_executor_process,
    stored_rows,
    stored_status,
    wait_for_steps,
)
from mdp_plain import MDPW01, READY
from palaestrio.executor import (
    Executor,
    ExecutorState,
    ExperimentRunRuntimeInformation,
    UnknownRunError,
    open_executor,
)
from palaestrio.mdp.client import open_client
from palaestrio.store.sender import DEFAULT_LINGER

HERE = Path(__file__).parent
COMPONENTS = "executor_components"


def store_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.mark.parametrize(("runs", "parallel"), [(2, 2), (3, 1)])
async def test_runs_finish_with_every_step_stored_once(
    tmp_path: Path, runs: int, parallel: int
) -> None:
    experiment_runs = [
        load_run(tmp_path, f"run-{i}", max_iter=10, episodes=2, agents=2) for i in range(runs)
    ]
    with trio.fail_after(60):
        async with open_executor(parallel, store_uri(tmp_path)) as executor:
            executor.schedule(experiment_runs)
    infos = executor.experiment_runs()
    assert [i.experiment_run.uid for i in infos] == [f"run-{i}" for i in range(runs)]
    for info in infos:
        assert info.status == "finished", info.reason
        assert stored_status(tmp_path / "runs.db", info.instance_uid) == ("finished", None)
        # 2 episodes x 10 steps; 1 environment; 2 agents.
        assert info.steps == 20
        assert stored_rows(tmp_path / "runs.db", info.instance_uid) == (20, 40)
    if parallel == 1:
        # Started in the order scheduled, never two at once.
        for earlier, later in itertools.pairwise(infos):
            assert earlier.ended_at is not None and later.started_at is not None
            assert earlier.ended_at <= later.started_at


async def test_cancel_one_run_while_the_other_finishes(tmp_path: Path) -> None:
    slow = load_run(tmp_path, "slow", environment=f"{COMPONENTS}:SlowEnvironment", max_iter=100_000)
    quick = load_run(tmp_path, "quick", environment=f"{COMPONENTS}:SlowEnvironment", max_iter=100)
    slow_is_stepping = trio.Event()

    def watch(info: ExperimentRunRuntimeInformation) -> None:
        if info.experiment_run.uid == "slow" and info.steps >= 5:
            slow_is_stepping.set()

    with trio.fail_after(60):
        async with open_executor(2, store_uri(tmp_path), on_update=watch) as executor:
            executor.schedule([slow, quick])
            await slow_is_stepping.wait()
            await executor.cancel("slow")
            slow_info, quick_info = executor.experiment_runs()
            assert slow_info.status == "cancelled"
    assert quick_info.status == "finished"
    db = tmp_path / "runs.db"
    assert stored_status(db, slow_info.instance_uid)[0] == "cancelled"
    world_states, muscle_actions = stored_rows(db, slow_info.instance_uid)
    # Stopped at a step boundary: every step it reported is stored, for env and agent.
    assert 5 <= slow_info.steps < 100_000
    assert (world_states, muscle_actions) == (slow_info.steps, slow_info.steps)
    assert stored_rows(db, quick_info.instance_uid) == (100, 100)


async def test_unknown_run_id_is_a_clear_error(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_executor(1, store_uri(tmp_path)) as executor:
            executor.schedule(load_run(tmp_path, "known"))
            with pytest.raises(UnknownRunError, match=r"no run 'unknown'.*known"):
                await executor.cancel("unknown")


async def test_component_error_fails_only_its_run(tmp_path: Path) -> None:
    failing = load_run(tmp_path, "failing", environment=f"{COMPONENTS}:FailingEnvironment")
    fine = load_run(tmp_path, "fine")
    with trio.fail_after(60):
        async with open_executor(2, store_uri(tmp_path)) as executor:
            executor.schedule([failing, fine])
    failing_info, fine_info = executor.experiment_runs()
    assert failing_info.status == "error"
    assert failing_info.reason is not None
    assert "fails at step 5" in failing_info.reason
    status, reason = stored_status(tmp_path / "runs.db", failing_info.instance_uid)
    assert status == "error"
    assert reason is not None and "fails at step 5" in reason
    assert fine_info.status == "finished"
    # Steps 1-4 were stored before the failure.
    assert stored_rows(tmp_path / "runs.db", failing_info.instance_uid) == (4, 4)


async def test_killed_governor_is_an_error_and_the_executor_goes_on(tmp_path: Path) -> None:
    victim = load_run(
        tmp_path, "victim", environment=f"{COMPONENTS}:SlowEnvironment", max_iter=100_000
    )
    after = load_run(tmp_path, "after")
    stepping = trio.Event()

    def watch(info: ExperimentRunRuntimeInformation) -> None:
        if info.experiment_run.uid == "victim" and info.steps >= 3:
            stepping.set()

    with trio.fail_after(60):
        async with open_executor(1, store_uri(tmp_path), on_update=watch) as executor:
            executor.schedule([victim, after])
            await stepping.wait()
            pid = executor.experiment_runs()[0].pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
    victim_info, after_info = executor.experiment_runs()
    assert victim_info.status == "error"
    assert victim_info.reason is not None and "SIGKILL" in victim_info.reason
    assert stored_status(tmp_path / "runs.db", victim_info.instance_uid)[0] == "error"
    assert after_info.status == "finished"


async def test_stubborn_governor_and_its_grandchild_are_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    stubborn = load_run(
        tmp_path,
        "stubborn",
        environment=f"{COMPONENTS}:StubbornEnvironment",
        environment_params=f"{{pid_file: {pid_file}}}",
    )
    with trio.fail_after(60):
        async with open_executor(
            1, store_uri(tmp_path), cancel_grace=0.5, term_grace=0.5
        ) as executor:
            executor.schedule(stubborn)
            while not pid_file.exists() or not pid_file.read_text():
                await trio.sleep(0.05)
            started = time.monotonic()
            await executor.cancel("stubborn")
            took = time.monotonic() - started
    governor_pid, grandchild_pid = map(int, pid_file.read_text().split())
    (info,) = executor.experiment_runs()
    assert info.status == "cancelled"
    assert info.reason is not None and "SIGKILL" in info.reason
    assert took < 5, "graceful grace + TERM grace are 1 s; the kill must not wait longer"
    # SIGKILL was sent; allow the kernel a moment to finish them (zombies count as dead).
    with trio.fail_after(2):
        while is_alive(governor_pid) or is_alive(grandchild_pid):
            await trio.sleep(0.01)


def is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_cancelling_the_scope_around_open_executor(tmp_path: Path) -> None:
    run = load_run(
        tmp_path, "endless", environment=f"{COMPONENTS}:SlowEnvironment", max_iter=100_000
    )
    stepping = trio.Event()

    def watch(info: ExperimentRunRuntimeInformation) -> None:
        if info.steps >= 3:
            stepping.set()

    with trio.fail_after(60):
        with trio.CancelScope() as outer:
            async with open_executor(1, store_uri(tmp_path), on_update=watch) as executor:
                executor.schedule(run)
                await stepping.wait()
                outer.cancel()
                await trio.sleep_forever()
    (info,) = executor.experiment_runs()
    assert info.status == "cancelled"
    status, _ = stored_status(tmp_path / "runs.db", info.instance_uid)
    assert status == "cancelled"
    assert stored_rows(tmp_path / "runs.db", info.instance_uid) == (info.steps, info.steps)


async def test_execute_returns_exited_in_the_seed_shape(tmp_path: Path) -> None:
    executor = Executor(parallel_runs=2, store_uri=store_uri(tmp_path), handle_signals=False)
    executor.schedule([load_run(tmp_path, "a"), load_run(tmp_path, "b")])
    with trio.fail_after(60):
        state = await executor.execute()
    assert state is ExecutorState.EXITED
    assert [i.status for i in executor.experiment_runs()] == ["finished", "finished"]
    assert all(not i.is_running for i in executor.experiment_runs())


# -- signals, against an executor in its own process --------------------------------


@pytest.mark.parametrize(
    ("signals", "exit_code", "limit"),
    [
        ([signal.SIGINT], 130, 2.0),
        ([signal.SIGTERM], 143, 2.0),
        ([signal.SIGINT, signal.SIGINT], 130, 2.0),
    ],
)
async def test_signals_stop_the_executor(
    tmp_path: Path, signals: list[signal.Signals], exit_code: int, limit: float
) -> None:
    from executor_support import write_experiment

    run_file = write_experiment(
        tmp_path, "long", environment=f"{COMPONENTS}:SlowEnvironment", max_iter=100_000
    )
    process = await start_executor_process(tmp_path, run_file)
    try:
        with trio.fail_after(60):
            instance = await wait_for_steps(process, 5)
            for signum in signals:
                process.send_signal(signum)
                if len(signals) > 1:
                    await trio.sleep(0.05)
            sent = time.monotonic()
            await process.wait()
            took = time.monotonic() - sent
    finally:
        process.kill()
        with trio.move_on_after(5, shield=True):
            await process.wait()
        assert process.stdout is not None
        await process.stdout.aclose()
    assert process.returncode == exit_code
    assert took < limit
    status, reason = stored_status(tmp_path / "runs.db", instance)
    assert status == "cancelled", reason
    world_states, muscle_actions = stored_rows(tmp_path / "runs.db", instance)
    assert world_states >= 5
    if len(signals) == 1:
        # Graceful: stopped at a step boundary with everything flushed.
        assert world_states == muscle_actions


@pytest.mark.parametrize("how", ["sleep", "busy"])
async def test_steps_before_a_blocked_step_are_stored_while_it_blocks(
    tmp_path: Path, how: str
) -> None:
    """Issue 16, finding 4: the step loop blocks in a component at step 50 (49 steps
    done); the sender thread stores those 49 within its linger, with the loop never
    yielding. Cancelled, the run is `cancelled` with exactly those steps stored."""
    marker, db = tmp_path / "blocked-at", tmp_path / "runs.db"
    run = load_run(
        tmp_path,
        "blocking",
        environment=f"{COMPONENTS}:BlockingEnvironment",
        environment_params=f"{{marker: {marker}, how: {how}}}",
        agents=2,
        max_iter=10**6,
    )
    with trio.fail_after(60):
        async with open_executor(
            1, store_uri(tmp_path), cancel_grace=0.5, term_grace=0.5
        ) as executor:
            executor.schedule(run)
            while not marker.exists() or not marker.read_text():
                await trio.sleep(0.01)
            (info,) = executor.experiment_runs()
            # The sink's linger (0.2 s) plus a margin for a loaded machine (fsync included).
            deadline = float(marker.read_text()) + DEFAULT_LINGER + 5.0
            with trio.move_on_at(trio.current_time() + deadline - time.time()):
                while stored_rows(db, info.instance_uid) != (49, 98):
                    await trio.sleep(0.01)
            assert stored_rows(db, info.instance_uid) == (49, 98), "not stored while blocked"
            await executor.cancel("blocking")
    (info,) = executor.experiment_runs()
    assert info.status == "cancelled"
    assert stored_status(db, info.instance_uid)[0] == "cancelled"
    assert stored_rows(db, info.instance_uid) == (49, 98)


async def test_the_executors_broker_keeps_the_bounds_it_is_given(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`broker_*` options (the runtime configuration's keys) reach the broker."""
    caplog.set_level(logging.WARNING, logger="palaestrio.mdp.broker")
    endpoint = f"ipc://{tmp_path}/broker"
    with trio.fail_after(60):
        async with (
            open_executor(
                1, store_uri(tmp_path), broker_uri=endpoint, broker_max_waiting_bytes=1000
            ),
            open_client(endpoint) as client,
        ):
            with trio.move_on_after(0.5):  # refused: no reply ever comes
                await client.request("nobody", b"x" * 5000)
    refusals = [
        r.getMessage() for r in caplog.records if "over the service's limit" in r.getMessage()
    ]
    assert refusals and "limit of 1,000 bytes" in refusals[0], refusals


async def test_a_stray_worker_with_a_garbage_service_name_expires_harmlessly(
    tmp_path: Path,
) -> None:
    """Random frames into the broker (chaos suite, seed 20261204, iteration 216) made a
    worker for a service named in bytes that are not UTF-8; when it went silent, the
    executor's callback failed to decode the name and took the executor down."""
    endpoint = f"ipc://{tmp_path}/broker"
    run = load_run(tmp_path, "after", max_iter=5)
    with trio.fail_after(60):
        async with open_executor(
            1, store_uri(tmp_path), broker_uri=endpoint, heartbeat_interval=0.1
        ) as executor:
            stray = zmq.Context.instance().socket(zmq.DEALER)
            stray.setsockopt(zmq.LINGER, 0)
            try:
                stray.connect(endpoint)
                stray.send_multipart([b"", MDPW01, READY, b"\xaa\xff garbage"])
                await trio.sleep(1.0)  # silent for 3 heartbeats of 0.1 s: expired
            finally:
                stray.close()
            executor.schedule(run)
    [info] = executor.experiment_runs()
    assert info.status == "finished", info.reason
