"""Helpers for the store tests and benchmark: record streams shaped like real runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import sqlalchemy as sa

from palaestrio.records import (
    AgentSpec,
    ComponentSpec,
    EnvironmentSpec,
    EpisodeEnded,
    EpisodeStarted,
    MuscleAction,
    PhaseEnded,
    PhaseStarted,
    Record,
    WorldState,
)
from palaestrio.store.messages import Scheduled

ENVIRONMENT = "dummy_env"
AGENTS = ("mighty_defender", "evil_attacker")


def scheduled(
    instance_uid: str, run_uid: str = "run-1", experiment_uid: str = "exp-1"
) -> Scheduled:
    return Scheduled(
        instance_uid=instance_uid,
        run_uid=run_uid,
        experiment_uid=experiment_uid,
        time=time.time(),
        document=f"uid: {run_uid}\nexperiment_uid: {experiment_uid}\nseed: 1\n",
        user="tester",
    )


def phase_started(phase: int = 0, *, workers: int = 1, episodes: int = 1) -> PhaseStarted:
    return PhaseStarted(
        phase=phase,
        name=f"phase-{phase}",
        mode="train",
        workers=workers,
        episodes=episodes,
        environments=[
            EnvironmentSpec(
                uid=ENVIRONMENT,
                environment=ComponentSpec("palaestrio.simulation:DummyEnvironment", {"max": 9}),
            )
        ],
        agents=[
            AgentSpec(
                name=name,
                brain=ComponentSpec("palaestrio.simulation:RandomBrain"),
                muscle=ComponentSpec("palaestrio.simulation:RandomMuscle"),
                objective=ComponentSpec("palaestrio.simulation:DummyObjective"),
                sensors=[f"{ENVIRONMENT}.sensor_{i}" for i in range(10)],
                actuators=[f"{ENVIRONMENT}.actuator_0"],
            )
            for name in AGENTS
        ],
        simulation=ComponentSpec("palaestrio.simulation:VanillaSimulation"),
        config={"mode": "train", "episodes": episodes, "worker": workers},
        walltime=time.time(),
    )


def step_records(phase: int, worker: int, episode: int, step: int, now: float) -> list[Record]:
    """One step of a 2-agent DummyEnvironment: 1 world state + 2 muscle actions."""
    sensors = {f"{ENVIRONMENT}.sensor_{i}": float(step + i) for i in range(10)}
    setpoints = {f"{ENVIRONMENT}.actuator_0": float(step % 7)}
    records: list[Record] = [
        WorldState(
            phase=phase,
            worker=worker,
            episode=episode,
            step=step,
            environment=ENVIRONMENT,
            simtime=step,
            sensors=sensors,
            setpoints=setpoints,
            rewards={"reward": 0.5},
            done=False,
            walltime=now,
        )
    ]
    for agent in AGENTS:
        records.append(
            MuscleAction(
                phase=phase,
                worker=worker,
                episode=episode,
                step=step,
                agent=agent,
                sensors=sensors,
                setpoints=setpoints,
                rewards={"reward": 0.5},
                objective=0.5,
                done=False,
                walltime=now,
            )
        )
    return records


def run_records(
    *, phases: int = 1, workers: int = 1, episodes: int = 2, steps: int = 10
) -> Iterator[Record]:
    """The record stream of a whole run, in the order the step loop emits it."""
    for phase in range(phases):
        yield phase_started(phase, workers=workers, episodes=episodes)
        for worker in range(workers):
            for episode in range(1, episodes + 1):
                yield EpisodeStarted(phase, worker, episode, time.time())
                for step in range(steps):
                    yield from step_records(phase, worker, episode, step, time.time())
                yield EpisodeEnded(phase, worker, episode, steps, time.time())
        yield PhaseEnded(phase, time.time())


def count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
