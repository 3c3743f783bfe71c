"""Runs the executor on run files, as the CLI would: ``python run_executor.py DB FILE...``.

Prints ``<status> <instance uid> <steps>`` on every update (for tests to follow), and
exits 130 / 143 / 129 when SIGINT / SIGTERM / SIGHUP interrupted it. The cancel grace is
``$CANCEL_GRACE`` seconds (default 5).
"""

from __future__ import annotations

import os
import signal
import sys

import trio

from palaestrio.executor import Executor, ExecutorState, ExperimentRunRuntimeInformation
from palaestrio.experiment import load_experiment_runs


def show(info: ExperimentRunRuntimeInformation) -> None:
    print(info.status, info.instance_uid, info.steps, flush=True)


def slurm_options() -> dict[str, object]:
    """With ``PALAESTRIO_TEST_LAUNCHER=slurm``: governors as Slurm steps, short heartbeats."""
    if os.environ.get("PALAESTRIO_TEST_LAUNCHER") != "slurm":
        return {}
    from palaestrio.executor.slurm import SlurmStepLauncher
    from palaestrio.executor.supervisor import governor_environment

    launcher = SlurmStepLauncher(env=governor_environment())
    return {"launcher": launcher, "broker_uri": "tcp://127.0.0.1:*", "curve": True}


async def main(db: str, files: list[str]) -> int:
    executor = Executor(
        store_uri=f"sqlite:///{db}",
        on_update=show,
        cancel_grace=float(os.environ.get("CANCEL_GRACE", "5")),
        heartbeat_interval=float(os.environ.get("HEARTBEAT_INTERVAL", "2.5")),
        **slurm_options(),  # type: ignore[arg-type]
    )
    for file in files:
        executor.schedule(load_experiment_runs(file))
    state = await executor.execute()
    codes = {ExecutorState.SIGINT: 130, ExecutorState.SIGTERM: 143, ExecutorState.SIGHUP: 129}
    return codes.get(state, 0)


if __name__ == "__main__":
    try:
        code = trio.run(main, sys.argv[1], sys.argv[2:])
    except KeyboardInterrupt:
        code = 130  # a ^C after the executor had already finished (as the CLI does)
    # Everything is down: a late ^C must not turn the exit status into "killed".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # As the CLI does: everything is stored and closed, skip the interpreter's teardown.
    sys.stdout.flush()
    os._exit(code)
