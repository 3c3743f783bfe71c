"""The built-in examples behave like palaestrAI 3.5's dummies."""

from __future__ import annotations

from gymnasium.spaces import Box, Discrete, MultiBinary

from palaestrio.simulation import (
    ActuatorInformation,
    DummyBrain,
    DummyEnvironment,
    DummyMuscle,
    DummyObjective,
    EnvironmentState,
    Memory,
    MemoryRow,
    RewardInformation,
)
from palaestrio.simulation.spaces import value_check


def test_discrete_dummy_environment() -> None:
    environment = DummyEnvironment(uid="env", seed=1, max_iter=3)
    baseline = environment.start_environment()
    assert [s.uid for s in baseline.sensors_available] == [str(i) for i in range(10)]
    assert [a.uid for a in baseline.actuators_available] == [str(i) for i in range(10)]
    assert {s.value for s in baseline.sensors_available} == {0}
    assert all(s.space == Discrete(4) for s in baseline.sensors_available)
    assert all(a.space == Discrete(100) for a in baseline.actuators_available)
    states = [environment.update([]) for _ in range(3)]
    assert [state.sensor_information[0].value for state in states] == [1, 2, 0]
    assert [[(r.uid, r.value) for r in state.rewards] for state in states] == [
        [("Dummy Reward", 1)],
        [("Dummy Reward", 2)],
        [("Dummy Reward", 0)],
    ]
    assert states[0].rewards[0].space == Discrete(4)
    assert [state.done for state in states] == [False, False, True]
    assert isinstance(states[0], EnvironmentState)
    again = environment.start_environment()  # a new episode starts from zero
    assert {s.value for s in again.sensors_available} == {0}


def test_continuous_dummy_environment_is_seeded() -> None:
    def readings(seed: int) -> list[int]:
        environment = DummyEnvironment(uid="env", seed=seed, discrete=False)
        baseline = environment.start_environment()
        assert all(a.space == Box(0, 10, shape=()) for a in baseline.actuators_available)
        assert all(s.space == Box(0, 2, shape=()) for s in baseline.sensors_available)
        return [s.value for _ in range(5) for s in environment.update([]).sensor_information]

    assert set(readings(1)) == {0, 1}
    assert readings(1) == readings(1)
    assert readings(1) != readings(2)


def test_dummy_brain_answers_the_number_plus_one() -> None:
    brain = DummyBrain()
    assert brain.thinking("m", None) == 0
    assert brain.thinking("m", 41) == 42


def actuators(space: object, count: int = 4) -> list[ActuatorInformation]:
    return [ActuatorInformation(None, space, f"env.{i}") for i in range(count)]


def test_dummy_muscle_samples_its_spaces_reproducibly() -> None:
    def proposals(seed: int) -> list[object]:
        muscle = DummyMuscle()
        muscle.seed = seed
        muscle.setup()
        values: list[object] = []
        for space in (Discrete(7, start=3), Box(0, 1, shape=(2,)), MultiBinary(2)):
            given = actuators(space)
            for _ in range(3):
                setpoints, data = muscle.propose_actions([], given)
                assert setpoints is given and data == -1
                check = value_check(space)
                values.extend(check(a.value) for a in setpoints)  # raises if outside
        return values

    first = proposals(1)
    assert first == proposals(1)
    assert first != proposals(2)


def test_dummy_muscle_counts_upwards_with_what_the_brain_sends() -> None:
    muscle = DummyMuscle(count_upwards=True)
    muscle.seed = 0
    muscle.setup()
    given = actuators(Discrete(3))
    values = []
    for update in range(5):
        muscle.update(update)
        setpoints, data = muscle.propose_actions([], given)
        values.append(setpoints[0].value)
        assert data == update
    assert values == [0, 1, 2, 0, 1]


def test_dummy_objective_sums_the_latest_rewards() -> None:
    objective = DummyObjective(params=1)
    memory = Memory()
    assert objective.internal_reward(memory) == 0.0
    rewards = [RewardInformation(2, None, "a"), RewardInformation(0.5, None, "b")]
    memory.append(MemoryRow("m", [], {}, rewards, False))
    assert objective.internal_reward(memory) == 2.5


def test_memory_keeps_the_latest_rows() -> None:
    memory = Memory(size_limit=3)
    rows = [MemoryRow("m", [], {}, [], False) for _ in range(5)]
    for row in rows:
        memory.append(row)
    assert list(memory) == rows[2:]
    assert memory.tail(2) == rows[3:]
    assert memory.tail(1) == rows[4:]
    memory.size_limit = 2
    memory.append(rows[0])
    assert memory.tail(5) == [rows[4], rows[0]]
