"""Brain dumps: a brain's `store()`/`load()` through the dumper, files in palaestrAI's
layout under the data path, `BrainStored` records, and the `load:` key."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from brain_components import CountingBrain
from palaestrio.experiment import load_experiment_run_text
from palaestrio.records import BrainStored, Record
from palaestrio.simulation import ComponentError, run_in_process

SIM = "palaestrio.simulation"


def run_file(uid: str, load: str = "", test_phase: bool = True) -> str:
    second = (
        """
  - phase_1:
      phase_config: {mode: test, worker: 1, episodes: 1}"""
        if test_phase
        else ""
    )
    return f"""\
uid: {uid}
seed: 3
version: "3.5"
schedule:
  - phase_0:
      environments:
        - environment: {{name: {SIM}:DummyEnvironment, uid: env, params: {{max_iter: 5}}}}
      agents:
        - name: agent_0
          brain: {{name: brain_components:CountingBrain, params: {{}}}}
          muscle: {{name: {SIM}:DummyMuscle, params: {{}}}}
          objective: {{name: {SIM}:DummyObjective, params: {{}}}}
          sensors: [env.0]
          actuators: [env.0]
          replay: []{load}
      simulation:
        name: {SIM}:VanillaSimulationController
        conditions: [{{name: {SIM}:EnvironmentTerminationCondition, params: {{}}}}]
      phase_config: {{mode: train, worker: 1, episodes: 2}}{second}
run_config:
  condition: {{name: {SIM}:VanillaRunGovernorTerminationCondition, params: {{}}}}
"""


class ListSink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    async def emit(self, record: Record) -> None:
        self.records.append(record)


def dump(data_path: Path, uid: str, phase: int) -> int:
    return int((data_path / "brains" / uid / str(phase) / "agent_0.bin").read_text())


async def test_a_later_phase_loads_the_previous_phase_brain(tmp_path: Path) -> None:
    CountingBrain.loaded.clear()
    sink = ListSink()
    await run_in_process(load_experiment_run_text(run_file("two-phases")), sink, data_path=tmp_path)
    # Phase 0: 2 episodes of 5 steps, a thought per step and one at each episode's end.
    assert dump(tmp_path, "two-phases", 0) == 12
    assert CountingBrain.loaded == [12]  # phase 1 started from phase 0's brain
    assert dump(tmp_path, "two-phases", 1) == 12 + 6
    stored = [r for r in sink.records if isinstance(r, BrainStored)]
    assert [(r.phase, r.agent, r.tag) for r in stored] == [
        (0, "agent_0", None),
        (1, "agent_0", None),
    ]
    assert stored[0].path == str(tmp_path / "brains" / "two-phases" / "0" / "agent_0.bin")


async def test_load_names_a_brain_of_an_earlier_run(tmp_path: Path) -> None:
    CountingBrain.loaded.clear()
    await run_in_process(
        load_experiment_run_text(run_file("first", test_phase=False)),
        ListSink(),
        data_path=tmp_path,
    )
    load = "\n          load: {agent: agent_0, experiment_run: first, phase: 0}"
    second = load_experiment_run_text(run_file("second", load, test_phase=False))
    await run_in_process(second, ListSink(), data_path=tmp_path)
    assert CountingBrain.loaded == [12]
    assert dump(tmp_path, "second", 0) == 24


async def test_a_missing_brain_dump_is_a_clear_error(tmp_path: Path) -> None:
    load = "\n          load: {agent: agent_0, experiment_run: never-ran, phase: 0}"
    run = load_experiment_run_text(run_file("second", load))
    with pytest.raises(ComponentError) as raised:
        await run_in_process(run, ListSink(), data_path=tmp_path)
    message = str(raised.value)
    assert "brain of agent 'agent_0'" in message
    assert (
        "'load' names a brain dump of agent 'agent_0' in phase 0 of experiment run "
        "'never-ran', but there is none"
    ) in message
    assert str(tmp_path / "brains" / "never-ran" / "0") in message


def test_brain_dumps_are_recorded_in_the_store(tmp_path: Path) -> None:
    """Through `palaestrio experiment-start` (real executor and store): the dumps land
    under ./_outputs and in `brain_states`, one row per dump with its agent and phase."""
    path = tmp_path / "run.yml"
    path.write_text(run_file("through-the-cli"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAESTRIO_")}
    env["PALAESTRIO_TEST_TAG"] = os.environ["PALAESTRIO_TEST_TAG"]
    env["PYTHONPATH"] = str(Path(__file__).parent)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    result = subprocess.run(
        [sys.executable, "-m", "palaestrio", "experiment-start", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(tmp_path / "palaestrio.db") as connection:
        rows = connection.execute(
            """SELECT b.phase, a.name, b.tag, b.path FROM brain_states b
               JOIN agents a ON a.id = b.agent_id ORDER BY b.id"""
        ).fetchall()
    assert [row[:3] for row in rows] == [(0, "agent_0", None), (1, "agent_0", None)]
    data_path = tmp_path / "_outputs"
    assert [Path(row[3]) for row in rows] == [
        data_path / "brains" / "through-the-cli" / str(phase) / "agent_0.bin" for phase in (0, 1)
    ]
    assert dump(data_path, "through-the-cli", 0) == 12
    assert dump(data_path, "through-the-cli", 1) == 18
