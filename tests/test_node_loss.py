"""Heartbeats are the failure detector: a "remote" governor whose node is lost (every
process of the node SIGKILLed, while its srun stand-in lingers as srun does) makes its
run `error` with reason `governor lost` within the heartbeat liveness; the runs on the
other node finish; nothing runs twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from executor_support import load_run
from fake_srun import NODE_VARIABLE
from leak_guard import TAG_VARIABLE
from palaestrio.executor import Child, ChildExit, LocalLauncher, open_executor
from palaestrio.executor.launch import LineCallback
from palaestrio.executor.supervisor import governor_environment
from palaestrio.status import RunStatus

SLOW = "executor_components:SlowEnvironment"
FAKE_SRUN = str(Path(__file__).with_name("fake_srun.py"))
INTERVAL, LIVENESS = 0.5, 3


class TwoNodeLauncher(LocalLauncher):
    """Places governors on nodes A and B in turn, each under an srun stand-in."""

    def __init__(self) -> None:
        super().__init__(env=governor_environment())
        self.nodes: list[str] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        name: str = "",
        env: Mapping[str, str] | None = None,
        on_output_line: LineCallback | None = None,
        task_status: trio.TaskStatus[Child] = trio.TASK_STATUS_IGNORED,
    ) -> ChildExit:
        node = "AB"[len(self.nodes) % 2]
        self.nodes.append(node)
        wrapped = [sys.executable, FAKE_SRUN, node, *argv]
        return await super().run(
            wrapped, name=name, env=env, on_output_line=on_output_line, task_status=task_status
        )


def processes_of_node(node: str) -> list[int]:
    """Every process of this test placed on `node` (whatever its depth or session)."""
    needles = {
        f"{NODE_VARIABLE}={node}".encode(),
        f"{TAG_VARIABLE}={os.environ[TAG_VARIABLE]}".encode(),
    }
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                variables = set(Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if needles <= variables:
                found.append(int(entry))
    return found


async def test_node_loss_fails_only_that_nodes_runs(tmp_path: Path) -> None:
    launcher = TwoNodeLauncher()
    runs = [
        load_run(
            tmp_path,
            f"node-{i}",
            environment=SLOW,
            environment_params="{delay: 0.01}",
            max_iter=300,
        )
        for i in range(4)
    ]
    db = tmp_path / "runs.db"
    with trio.fail_after(60):
        async with open_executor(
            4,
            f"sqlite:///{db}",
            broker_uri="tcp://127.0.0.1:*",
            curve=True,
            launcher=launcher,
            heartbeat_interval=INTERVAL,
            heartbeat_liveness=LIVENESS,
        ) as executor:
            executor.schedule(runs)
            infos = executor.experiment_runs()
            while not all(info.status is RunStatus.RUNNING for info in infos):
                assert not any(info.status.is_terminal for info in infos), infos
                await trio.sleep(0.05)
            victims = processes_of_node("B")
            assert len(victims) >= 2, "both governors of node B (and their children)"
            lost_at = trio.current_time()
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            lost = [info for node, info in zip(launcher.nodes, infos, strict=True) if node == "B"]
            while not all(info.status.is_terminal for info in lost):
                await trio.sleep(0.01)
            detected_after = trio.current_time() - lost_at
    statuses = [
        (node, info.status, info.reason) for node, info in zip(launcher.nodes, infos, strict=True)
    ]
    for node, status, reason in statuses:
        if node == "A":
            assert status is RunStatus.FINISHED, statuses
        else:
            assert status is RunStatus.ERROR, statuses
            assert reason is not None and reason.startswith("governor lost"), statuses
    # The srun stand-in lingers for 600 s: only the heartbeats can have noticed.
    assert detected_after < INTERVAL * LIVENESS + 5, detected_after
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT uid, status FROM experiment_run_instances").fetchall()
    assert sorted(rows) == sorted((info.instance_uid, info.status.value) for info in infos)
