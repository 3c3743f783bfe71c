"""Governors as Slurm steps vs local processes (issue 13): ``python benchmarks/slurm_steps.py``.

Needs root and Debian's slurm-wlm (``nox -s slurm`` installs it); starts the two-node
test Slurm of ``tests/slurm_cluster.py`` and stops it again. Prints, per launcher:

* start latency: scheduling → the run is ``running`` (governor started, connected over
  TCP with CURVE, start request answered), median over runs started one at a time;
* cancel latency: ``Executor.cancel`` of a running run → its status is stored;
* node loss (Slurm only, heartbeat 1.0 s × 3): SIGKILL of node n2 → its runs ``error``.

Also prints ``uptime`` (this machine has 2 cores; numbers move with its load).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests")]

import slurm_cluster  # noqa: E402
from executor_support import load_run  # noqa: E402
from palaestrio.executor import LocalLauncher, open_executor  # noqa: E402
from palaestrio.executor.launch import Launcher  # noqa: E402
from palaestrio.executor.slurm import SlurmStepLauncher  # noqa: E402
from palaestrio.executor.supervisor import governor_environment  # noqa: E402
from palaestrio.status import RunStatus  # noqa: E402

SLOW = "executor_components:SlowEnvironment"
RUNS = 6


async def until(condition: Callable[[], bool]) -> None:
    while True:
        if condition():
            return
        await trio.sleep(0.002)


async def measure(launcher: Launcher, scratch: Path) -> tuple[float, float]:
    starts, cancels = [], []
    async with open_executor(
        1,
        f"sqlite:///{scratch / 'bench.db'}",
        broker_uri="tcp://127.0.0.1:*",
        curve=True,
        launcher=launcher,
    ) as executor:
        for i in range(RUNS):
            executor.schedule(load_run(scratch, f"b{i}", environment=SLOW, max_iter=10**6))
            info = executor.experiment_runs()[-1]
            began = trio.current_time()
            await until(lambda: info.status is RunStatus.RUNNING)  # noqa: B023
            starts.append(trio.current_time() - began)
            began = trio.current_time()
            await executor.cancel(info.instance_uid)
            cancels.append(trio.current_time() - began)
    return statistics.median(starts), statistics.median(cancels)


async def node_loss(cluster: slurm_cluster.Cluster, scratch: Path) -> float:
    runs = [load_run(scratch, f"n{i}", environment=SLOW, max_iter=10**6) for i in range(4)]
    launcher = SlurmStepLauncher(env=governor_environment())
    async with open_executor(
        4,
        f"sqlite:///{scratch / 'loss.db'}",
        broker_uri="tcp://127.0.0.1:*",
        curve=True,
        launcher=launcher,
        heartbeat_interval=1.0,
    ) as executor:
        executor.schedule(runs)
        infos = executor.experiment_runs()
        await until(lambda: all(info.status is RunStatus.RUNNING for info in infos))
        cluster.kill_node("n2")
        lost = trio.current_time()
        await until(lambda: sum(info.status is RunStatus.ERROR for info in infos) >= 2)
        detected = trio.current_time() - lost
        executor.shutdown()
    return detected


async def main(cluster: slurm_cluster.Cluster, scratch: Path) -> None:
    local = LocalLauncher(env=governor_environment())
    slurm = SlurmStepLauncher(env=governor_environment())
    for name, launcher in (("local", local), ("slurm step", slurm)):
        start, cancel = await measure(launcher, scratch)
        print(f"{name:>10}: start {start * 1000:.0f} ms, cancel {cancel * 1000:.0f} ms (median)")
    print(f"node loss seen after {await node_loss(cluster, scratch):.2f} s (1.0 s × 3)")


if __name__ == "__main__":
    os.environ["PALAESTRIO_SLURM_TESTS"] = "1"
    if (why := slurm_cluster.available()) is not None:
        print(f"skipped: {why}")
        sys.exit(0)
    with tempfile.TemporaryDirectory() as scratch:
        cluster = slurm_cluster.start(Path(scratch))
        os.environ["SLURM_CONF"] = cluster.env["SLURM_CONF"]
        try:
            trio.run(main, cluster, Path(scratch))
        finally:
            cluster.stop()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
