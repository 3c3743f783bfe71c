"""A run file naming palaestrAI's dummy classes through `palaestrai_renamed` (this
folder's module of palaestrAI's own classes, some renamed or changed for a test): one
environment, one agent, one phase. Used by the adapter tests and the async-cancel
benchmark; callers `.replace()` single lines of it for their cases."""

from __future__ import annotations


def renamed_run(
    uid: str,
    *,
    environment: str = "palaestrai_renamed:DummyEnvironment",
    max_iter: int = 10,
    agent: str = "a",
    brain: str = "palaestrai_renamed:DummyBrain",
    objective: str = "palaestrai_renamed:DummyObjective",
    sensors: int = 1,
    episodes: int = 1,
) -> str:
    ids = ", ".join(f"env.{i}" for i in range(sensors))
    return f"""\
uid: {uid}
seed: 7
version: "3.5"
schedule:
  - phase_0:
      environments:
        - environment:
            name: {environment}
            uid: env
            params: {{discrete: true, max_iter: {max_iter}}}
      agents:
        - name: {agent}
          brain: {{name: {brain}, params: {{}}}}
          muscle: {{name: palaestrai_renamed:DummyMuscle, params: {{count_upwards: true}}}}
          objective: {{name: {objective}, params: {{}}}}
          sensors: [{ids}]
          actuators: [{ids}]
      simulation:
        name: palaestrai.simulation:Vanilla
        conditions:
          - name: palaestrai.experiment:EnvironmentTerminationCondition
            params: {{}}
      phase_config: {{mode: train, worker: 1, episodes: {episodes}}}
run_config:
  condition:
    name: palaestrai.experiment:VanillaRunGovernorTerminationCondition
    params: {{}}
"""
