"""Helpers for executor tests: experiment files and what the store holds."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from palaestrio.executor import Child, ChildExit, LocalLauncher
from palaestrio.executor.launch import LineCallback
from palaestrio.executor.supervisor import governor_environment
from palaestrio.experiment import ExperimentRun, load_experiment_runs

SIM = "palaestrio.simulation"


def write_experiment(
    directory: Path,
    uid: str,
    *,
    environment: str = f"{SIM}:DummyEnvironment",
    environment_params: str = "{}",
    max_iter: int = 10,
    episodes: int = 1,
    agents: int = 1,
) -> Path:
    """A palaestrAI-shaped run file: one phase, one environment `env`, `agents` agents."""
    agent_blocks = "".join(
        f"""
        - name: agent_{index}
          brain: {{name: {SIM}:DummyBrain, params: {{}}}}
          muscle: {{name: {SIM}:DummyMuscle, params: {{}}}}
          objective: {{name: {SIM}:DummyObjective, params: {{}}}}
          sensors: [{", ".join(f"env.{i}" for i in range(5 * index, 5 * index + 5))}]
          actuators: [{", ".join(f"env.{i}" for i in range(5 * index, 5 * index + 5))}]"""
        for index in range(agents)
    )
    text = f"""\
uid: {uid}
seed: 7
version: "3.5"
schedule:
  - phase_0:
      environments:
        - environment:
            name: {environment}
            uid: env
            params: {{max_iter: {max_iter}, {environment_params.strip("{}")}}}
      agents:{agent_blocks}
      simulation:
        name: {SIM}:VanillaSimulationController
        conditions:
          - name: {SIM}:EnvironmentTerminationCondition
            params: {{}}
      phase_config:
        mode: train
        worker: 1
        episodes: {episodes}
run_config:
  condition:
    name: {SIM}:VanillaRunGovernorTerminationCondition
    params: {{}}
"""
    path = directory / f"{uid}.yml"
    path.write_text(text)
    return path


def load_run(directory: Path, uid: str, **options: object) -> ExperimentRun:
    (run,) = load_experiment_runs(write_experiment(directory, uid, **options))  # type: ignore[arg-type]
    return run


def stored_status(db: Path, instance_uid: str) -> tuple[str, str | None]:
    with sqlite3.connect(db) as connection:
        row = connection.execute(
            "SELECT status, status_reason FROM experiment_run_instances WHERE uid = ?",
            (instance_uid,),
        ).fetchone()
    assert row is not None, f"instance {instance_uid} is not in the store"
    return row[0], row[1]


def stored_rows(db: Path, instance_uid: str) -> tuple[int, int]:
    """(world states, muscle actions) stored for one run instance."""
    with sqlite3.connect(db) as connection:
        (world_states,) = connection.execute(
            """SELECT count(*) FROM world_states w
               JOIN environments e ON w.environment_id = e.id
               JOIN experiment_run_phases p ON e.experiment_run_phase_id = p.id
               JOIN experiment_run_instances i ON p.experiment_run_instance_id = i.id
               WHERE i.uid = ?""",
            (instance_uid,),
        ).fetchone()
        (muscle_actions,) = connection.execute(
            """SELECT count(*) FROM muscle_actions m
               JOIN agents a ON m.agent_id = a.id
               JOIN experiment_run_phases p ON a.experiment_run_phase_id = p.id
               JOIN experiment_run_instances i ON p.experiment_run_instance_id = i.id
               WHERE i.uid = ?""",
            (instance_uid,),
        ).fetchone()
    return world_states, muscle_actions


HERE = Path(__file__).parent


async def start_executor_process(
    tmp_path: Path, run_file: Path, env: dict[str, str] | None = None
) -> trio.Process:
    """`run_executor.py` on `run_file`, storing into ``tmp_path/runs.db``."""
    return await trio.lowlevel.open_process(
        [sys.executable, str(HERE / "run_executor.py"), str(tmp_path / "runs.db"), str(run_file)],
        stdout=subprocess.PIPE,
        cwd=HERE,
        env=None if env is None else {**os.environ, **env},
    )


async def wait_for_steps(process: trio.Process, minimum: int) -> str:
    """Reads the executor's update lines until its run has `minimum` steps; its uid."""
    assert process.stdout is not None
    buffer = b""
    async for chunk in process.stdout:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            status, instance, steps = line.decode().split()
            if status == "running" and int(steps) >= minimum:
                return instance
    raise AssertionError("the executor ended before its run made progress")


async def stop_process(process: trio.Process) -> None:
    """Kills what is left of a test's process and closes its pipe (test cleanup)."""
    if process.returncode is None:
        process.kill()
    with trio.move_on_after(5, shield=True):
        await process.wait()
    if process.stdout is not None:
        await process.stdout.aclose()


async def wait_for_file(path: Path) -> str:
    while not path.exists() or not path.read_text():
        await trio.sleep(0.01)
    return path.read_text()


class SecondLaunchDiffers(LocalLauncher):
    """A local launcher whose second launch runs `second(argv)` instead (which may raise,
    as a launch that cannot spawn does)."""

    def __init__(self) -> None:
        super().__init__(env=governor_environment())
        self.launches = 0

    def second(self, argv: Sequence[str]) -> Sequence[str]:
        raise NotImplementedError

    async def run(
        self,
        argv: Sequence[str],
        *,
        name: str = "",
        env: Mapping[str, str] | None = None,
        on_output_line: LineCallback | None = None,
        task_status: trio.TaskStatus[Child] = trio.TASK_STATUS_IGNORED,
    ) -> ChildExit:
        self.launches += 1
        if self.launches == 2:
            argv = self.second(argv)
        return await super().run(
            argv, name=name, env=env, on_output_line=on_output_line, task_status=task_status
        )
