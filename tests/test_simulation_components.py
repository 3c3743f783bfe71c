"""Components for the simulation tests, named in experiment files as
`test_simulation_components:<Class>` (tests/ is on sys.path under pytest). What they
see is kept in class-level lists, since the step loop builds the instances."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import trio
from gymnasium.spaces import Box, Discrete

from palaestrio.simulation import (
    ActuatorInformation,
    Brain,
    DummyEnvironment,
    DummyMuscle,
    Environment,
    EnvironmentBaseline,
    EnvironmentState,
    EnvironmentStateTransformer,
    Memory,
    MemoryRow,
    Objective,
    PhaseProgress,
    Reward,
    RewardInformation,
    SensorInformation,
    StepOutcome,
    TerminationCondition,
)


class RecordingEnvironment(DummyEnvironment):
    """A DummyEnvironment that notes what it receives, per uid."""

    received: ClassVar[dict[str, list[list[tuple[str, Any]]]]] = {}
    shut_down: ClassVar[list[str]] = []

    def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:
        self.received.setdefault(self.uid, []).append([(a.uid, a.value) for a in actuators])
        return super().update(actuators)

    def shutdown(self) -> None:
        self.shut_down.append(self.uid)


class FailingEnvironment(DummyEnvironment):
    """Raises in its `fail_at`-th update (1-based)."""

    def __init__(self, uid: str, seed: int, fail_at: int = 3) -> None:
        super().__init__(uid, seed)
        self.fail_at = fail_at

    def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:
        if self.iter + 1 == self.fail_at:
            raise RuntimeError(f"broken at update {self.fail_at}")
        return super().update(actuators)


class SecondStartFails(DummyEnvironment):
    """Fails when it is started for the second episode (by the default reset)."""

    def __init__(self, uid: str, seed: int) -> None:
        super().__init__(uid, seed, max_iter=2)
        self.starts = 0

    def start_environment(self) -> EnvironmentBaseline:
        self.starts += 1
        if self.starts == 2:
            raise OSError("the simulator is gone")
        return super().start_environment()


class AsyncEnvironment(DummyEnvironment):
    """DummyEnvironment with coroutine methods."""

    async def start_environment(self) -> EnvironmentBaseline:  # type: ignore[override]
        await trio.lowlevel.checkpoint()
        return super().start_environment()

    async def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:  # type: ignore[override]
        await trio.lowlevel.checkpoint()
        return super().update(actuators)


class NumpyEnvironment(Environment):
    """Readings and rewards as numpy values; one Box actuator "power" of shape (2,)."""

    def __init__(self, uid: str, seed: int, steps: int = 3) -> None:
        super().__init__(uid, seed)
        self.steps = steps
        self.count = 0

    def start_environment(self) -> EnvironmentBaseline:
        self.count = 0
        return EnvironmentBaseline(
            [
                SensorInformation(np.float32(0.5), Box(0, 1, shape=()), "level"),
                SensorInformation(np.array([1, 2]), Box(0, 9, shape=(2,)), "pair"),
            ],
            [ActuatorInformation(np.zeros(2), Box(-1, 1, shape=(2,)), "power")],
        )

    def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:
        self.count += 1
        return EnvironmentState(
            [
                SensorInformation(np.float32(0.25), None, "level"),
                SensorInformation(np.array([self.count, 2]), None, "pair"),
            ],
            [RewardInformation(np.float64(1.5), None, "score")],
            done=self.count >= self.steps,
            simtime=np.int64(self.count * 15),
        )


class BoxMuscle(DummyMuscle):
    """Sets "power" to a numpy array inside its Box."""

    def propose_actions(
        self, sensors: list[SensorInformation], actuators_available: list[ActuatorInformation]
    ) -> tuple[list[ActuatorInformation], Any]:
        for actuator in actuators_available:
            actuator.value = np.array([0.5, -0.25], dtype=np.float32)
        return actuators_available, None


class ObservingMuscle(DummyMuscle):
    """Notes the sensor uids it is given and what its memory holds."""

    seen: ClassVar[list[list[str]]] = []
    memory_sizes: ClassVar[list[int]] = []
    proposed: ClassVar[list[list[tuple[str, Any]]]] = []
    remembered: ClassVar[list[MemoryRow]] = []

    def propose_actions(
        self, sensors: list[SensorInformation], actuators_available: list[ActuatorInformation]
    ) -> tuple[list[ActuatorInformation], Any]:
        self.seen.append([sensor.uid for sensor in sensors])
        self.memory_sizes.append(len(self.memory))
        self.remembered.extend(self.memory.tail(1))
        setpoints, data = super().propose_actions(sensors, actuators_available)
        self.proposed.append([(a.uid, a.value) for a in setpoints])
        return setpoints, data


class OutOfSpaceMuscle(DummyMuscle):
    def propose_actions(
        self, sensors: list[SensorInformation], actuators_available: list[ActuatorInformation]
    ) -> tuple[list[ActuatorInformation], Any]:
        actuators_available[0].value = 100  # Discrete(100) ends at 99
        return actuators_available, None


class ForeignActuatorMuscle(DummyMuscle):
    def propose_actions(
        self, sensors: list[SensorInformation], actuators_available: list[ActuatorInformation]
    ) -> tuple[list[ActuatorInformation], Any]:
        super().propose_actions(sensors, actuators_available)
        foreign = ActuatorInformation(1, Discrete(100), "env.9")
        return [*actuators_available, foreign], None


class RaisingMuscle(DummyMuscle):
    def propose_actions(
        self, sensors: list[SensorInformation], actuators_available: list[ActuatorInformation]
    ) -> tuple[list[ActuatorInformation], Any]:
        raise ZeroDivisionError("the muscle divided by zero")


class RaisingBrain(Brain):
    def thinking(self, muscle_id: str, data_from_muscle: Any) -> Any:
        raise KeyError("brain trouble")


class RaisingObjective(Objective):
    def internal_reward(self, memory: Memory) -> float:
        raise ValueError("no objective today")


class NoneObjective(Objective):
    def internal_reward(self, memory: Memory) -> float:
        return None  # type: ignore[return-value]


class EpisodeAfterSteps(TerminationCondition):
    """Ends every episode after `steps` steps."""

    def __init__(self, steps: int = 2) -> None:
        self.steps = steps

    def check_episode(self, outcome: StepOutcome) -> bool:
        return outcome.step + 1 >= self.steps


class PhaseAfterEpisodes(TerminationCondition):
    """Ends the phase once `episodes` episodes finished in all workers together."""

    def __init__(self, episodes: int = 1) -> None:
        self.episodes = episodes

    def check_phase(self, progress: PhaseProgress) -> bool:
        return sum(progress.episodes_finished) >= self.episodes


class ResettingEnvironment(DummyEnvironment):
    """Overrides reset (so no shutdown between episodes) and counts the calls."""

    calls: ClassVar[list[str]] = []

    def start_environment(self) -> EnvironmentBaseline:
        self.calls.append("start")
        return super().start_environment()

    def reset(self) -> EnvironmentBaseline:
        self.calls.append("reset")
        return super().start_environment()

    def shutdown(self) -> None:
        self.calls.append("shutdown")


class RewardUsingEnvironment(DummyEnvironment):
    """Asks its configured Reward for the rewards."""

    def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:
        state = super().update(actuators)
        assert self.reward is not None
        state.rewards = self.reward(state)
        return state


class StepReward(Reward):
    """One reward "steps" that counts the updates, times `scale`."""

    def __init__(self, scale: int = 1) -> None:
        super().__init__(scale=scale)
        self.count = 0

    def __call__(self, state: EnvironmentState) -> list[RewardInformation]:
        self.count += 1
        return [RewardInformation(self.count * self.params["scale"], None, "steps")]


class HideSensorZero(EnvironmentStateTransformer):
    """Sets sensor "0" to -1 in every state."""

    def __call__(self, state: EnvironmentState) -> EnvironmentState:
        for reading in state.sensor_information:
            if reading.uid == "0":
                reading.value = -1
        return state


class GarbageEnvironment(DummyEnvironment):
    """Returns readings that are not SensorInformation objects."""

    def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:
        state = super().update(actuators)
        state.sensor_information = [("0", 1)]  # type: ignore[list-item]
        return state


class NoneMuscle(DummyMuscle):
    def propose_actions(  # type: ignore[override]
        self, sensors: list[SensorInformation], actuators_available: list[ActuatorInformation]
    ) -> tuple[None, None]:
        return None, None
