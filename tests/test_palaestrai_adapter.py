"""palaestrAI's own components in palaestrio's step loop, through the adapters: real
palaestrAI code (the `palaestrai` extra; `nox -s tests_palaestrai`)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("palaestrai")

from palaestrai.agent import Memory as PalaestraiMemory

import palaestrai_renamed
from palaestrio.experiment import load_experiment_run_text
from palaestrio.records import MuscleAction, Record, WorldState
from palaestrio.simulation import run_in_process

HERE = Path(__file__).parent

RUN = """\
uid: palaestrai-dummies
seed: 7
version: "3.5"
schedule:
  - phase_0:
      environments:
        - environment:
            name: palaestrai_renamed:DummyEnvironment
            uid: env
            params: {discrete: true, max_iter: 10}
      agents:
        - name: mighty_defender
          brain: {name: palaestrai_renamed:DummyBrain, params: {}}
          muscle: {name: palaestrai_renamed:DummyMuscle, params: {count_upwards: true}}
          objective: {name: palaestrai_renamed:OBJECTIVE, params: {}}
          sensors: [env.0, env.1, env.2, env.3, env.4]
          actuators: [env.0, env.1, env.2, env.3, env.4]
      simulation:
        name: palaestrai.simulation:Vanilla
        conditions:
          - name: palaestrai.experiment:EnvironmentTerminationCondition
            params: {}
      phase_config:
        mode: train
        worker: 1
        episodes: 2
run_config:
  condition:
    name: palaestrai.experiment:VanillaRunGovernorTerminationCondition
    params: {}
"""


class ListSink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    async def emit(self, record: Record) -> None:
        self.records.append(record)


def test_the_test_module_holds_palaestrais_own_classes() -> None:
    assert palaestrai_renamed.DummyBrain.__module__ == "palaestrai.agent.dummy_brain"
    assert palaestrai_renamed.DummyEnvironment.__module__ == (
        "palaestrai.environment.dummy_environment"
    )


async def test_palaestrai_dummies_run_in_process_through_the_adapters() -> None:
    palaestrai_renamed.SeeingObjective.seen.clear()
    run = load_experiment_run_text(RUN.replace("OBJECTIVE", "SeeingObjective"))
    sink = ListSink()
    summary = await run_in_process(run, sink)
    assert (summary.episodes, summary.steps) == (2, 20)
    actions = [r for r in sink.records if isinstance(r, MuscleAction)]
    states = [r for r in sink.records if isinstance(r, WorldState)]
    assert len(actions) == len(states) == 20
    # palaestrAI's DummyObjective (pandas) rated each transition: the sum of its rewards.
    assert [a.objective for a in actions] == [float(sum(a.rewards.values())) for a in actions]
    seen = palaestrai_renamed.SeeingObjective.seen
    assert len(seen) == 20 and all(isinstance(m, PalaestraiMemory) for m in seen)
    # palaestrAI's DummyBrain returns its muscle's counter + 1; DummyMuscle counts upwards
    # with it (an episode starts without data for the brain: 0).
    episode_0 = [a.setpoints["env.0"] for a in actions if a.episode == 0]
    assert episode_0 == list(range(10))
    # palaestrAI's DummyEnvironment ends the episode after max_iter updates.
    assert [a.done for a in actions if a.episode == 1] == [False] * 9 + [True]
    assert {a.terminated for a in actions} == {None}


def _palaestrio(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAESTRIO_")}
    env["PALAESTRIO_TEST_TAG"] = os.environ["PALAESTRIO_TEST_TAG"]
    env["PYTHONPATH"] = str(HERE)
    env["XDG_CONFIG_HOME"] = str(cwd / "xdg")
    return subprocess.run(
        [sys.executable, "-m", "palaestrio", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_palaestrai_dummies_through_experiment_start(tmp_path: Path) -> None:
    path = tmp_path / "run.yml"
    path.write_text(RUN.replace("OBJECTIVE", "DummyObjective"))
    result = _palaestrio(tmp_path, "experiment-start", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(tmp_path / "palaestrio.db") as connection:
        (status,) = connection.execute("SELECT status FROM experiment_run_instances").fetchone()
        rows: list[Any] = connection.execute(
            "SELECT objective, rewards, done, terminated FROM muscle_actions ORDER BY id"
        ).fetchall()
    assert status == "finished"
    assert len(rows) == 20
    assert sum(done for _, _, done, _ in rows) == 2
    assert {terminated for *_, terminated in rows} == {None}
