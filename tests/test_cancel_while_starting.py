"""A run cancelled while its governor is being launched ends at once, `cancelled`.

trio's `nursery.start` keeps a task that calls `started` after the caller was cancelled
and waits for it: a launch shielded from the start would then wait for the governor to
give up on its own (the broker gone, ~25 s), and leave the unstarted runs `scheduled`."""

from __future__ import annotations

from pathlib import Path

import trio

from executor_support import load_run, stored_status
from palaestrio.executor import Executor, ExecutorState, ExperimentRunRuntimeInformation
from palaestrio.status import RunStatus


async def test_a_shutdown_while_a_governor_starts_ends_promptly(tmp_path: Path) -> None:
    runs = [load_run(tmp_path, f"run-{index}") for index in range(3)]
    executor = Executor(1, store_uri=f"sqlite:///{tmp_path / 'runs.db'}", handle_signals=False)

    def stop_when_starting(info: ExperimentRunRuntimeInformation) -> None:
        if info.status is RunStatus.STARTING:
            executor.shutdown()

    executor.on_update = stop_when_starting
    executor.schedule(runs)
    with trio.fail_after(10):
        assert await executor.execute() is ExecutorState.EXITED
    for info in executor.experiment_runs():
        assert info.status is RunStatus.CANCELLED
        assert stored_status(tmp_path / "runs.db", info.instance_uid)[0] == "cancelled"
