"""palaestrAI's own dummies under a module name palaestrio's alias table does not know:
they must run through the adapters (real palaestrAI code), not as palaestrio's dummies.
The subclasses below add only what the tests observe."""

from __future__ import annotations

import asyncio
import random
from typing import Any, ClassVar

from palaestrai.agent.brain import Brain
from palaestrai.agent.dummy_brain import DummyBrain
from palaestrai.agent.dummy_muscle import DummyMuscle
from palaestrai.agent.dummy_objective import DummyObjective
from palaestrai.environment import EnvironmentState
from palaestrai.environment.dummy_environment import DummyEnvironment

__all__ = [
    "AsyncEnvironment",
    "DeprecatedBrain",
    "DummyBrain",
    "DummyEnvironment",
    "DummyMuscle",
    "DummyObjective",
    "LegacyBrain",
    "SeeingBrain",
    "SeeingEnvironment",
    "SeeingMuscle",
    "SeeingObjective",
]


class SeeingObjective(DummyObjective):  # type: ignore[misc]
    seen: ClassVar[list[Any]] = []

    def internal_reward(self, memory: Any, **kwargs: Any) -> float:
        SeeingObjective.seen.append(memory)
        return float(super().internal_reward(memory, **kwargs))


class SeeingEnvironment(DummyEnvironment):  # type: ignore[misc]
    """Says how its episodes end (gymnasium's pair) when `ending` is given."""

    seeds: ClassVar[list[int]] = []

    def __init__(self, *args: Any, ending: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ending = ending
        SeeingEnvironment.seeds.append(self.seed)

    def update(self, actuators: Any) -> Any:
        sensors, rewards, done = super().update(actuators)
        if self.ending is None:
            return sensors, rewards, done
        return EnvironmentState(
            sensor_information=sensors,
            rewards=rewards,
            done=done,
            terminated=done and self.ending == "terminated",
            truncated=done and self.ending == "truncated",
        )


class SeeingBrain(DummyBrain):  # type: ignore[misc]
    """Adds a statistic per thought (palaestrAI asserts on one not popped), counts its
    stores and says what it loaded (DummyBrain's value: its last update)."""

    seeds: ClassVar[list[int]] = []
    stores: ClassVar[list[str]] = []
    loaded: ClassVar[list[tuple[str, int]]] = []

    def setup(self) -> None:
        SeeingBrain.seeds.append(self.seed)

    def thinking(self, muscle_id: str, data_from_muscle: Any) -> Any:
        self.add_statistics("thought", data_from_muscle)
        return super().thinking(muscle_id, data_from_muscle)

    def store(self) -> None:
        SeeingBrain.stores.append(self.name)
        super().store()

    def load(self) -> None:
        super().load()
        SeeingBrain.loaded.append((self.name, self._dummy_value))


class SeeingMuscle(DummyMuscle):  # type: ignore[misc]
    """Seeds the process-wide `random` in setup, as hARL does, and draws from it."""

    proposals: ClassVar[dict[str, int]] = {}
    draws: ClassVar[dict[str, list[float]]] = {}

    def setup(self) -> None:
        random.seed(len(self.uid))
        SeeingMuscle.draws[self.uid] = []

    def propose_actions(self, sensors: Any, actuators_available: Any) -> Any:
        SeeingMuscle.proposals[self.uid] = SeeingMuscle.proposals.get(self.uid, 0) + 1
        SeeingMuscle.draws[self.uid].append(random.random())
        return super().propose_actions(sensors, actuators_available)


class AsyncEnvironment(DummyEnvironment):  # type: ignore[misc]
    """Coroutine methods and a task that must stay alive from the first start to the
    phase's end, as palaestrai-mosaik's environment keeps its simulator tasks."""

    updates: ClassVar[int] = 0

    async def start_environment(self) -> Any:
        if getattr(self, "_ticker", None) is None:
            self._ticker = asyncio.get_running_loop().create_task(self._keep_ticking())
        await asyncio.sleep(0)
        return super().start_environment()

    async def _keep_ticking(self) -> None:
        while True:
            await asyncio.sleep(0.001)

    async def update(self, actuators: Any) -> Any:
        if self._ticker.done():
            raise RuntimeError("the environment's task did not survive")
        await asyncio.sleep(0.001)
        AsyncEnvironment.updates += 1
        return super().update(actuators)


class LegacyBrain(DummyBrain):  # type: ignore[misc]
    """palaestrAI's older brain constructor, which palaestrAI still serves by retrying
    with seed, sensors and actuators after `cls(**params)` raised TypeError."""

    made: ClassVar[list[tuple[int, list[str], list[str]]]] = []

    def __init__(self, seed: int, sensors: list[Any], actuators: list[Any], **params: Any):
        super().__init__(**params)
        uids = [sensor.uid for sensor in sensors], [actuator.uid for actuator in actuators]
        LegacyBrain.made.append((seed, *uids))


class DeprecatedBrain(Brain):  # type: ignore[misc]
    """On palaestrAI's deprecated storage API, which palaestrAI's own `Brain.store` and
    `Brain.load` fall back to: `store_model(path)`, `load_model(path)`."""

    loaded: ClassVar[list[str]] = []

    def thinking(self, muscle_id: str, data_from_muscle: Any) -> Any:
        return None

    def store_model(self, path: Any) -> None:
        (path / "model").write_text("stored")

    def load_model(self, path: Any) -> None:
        DeprecatedBrain.loaded.append(str(path))
