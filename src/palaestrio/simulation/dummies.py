"""Built-in example components that behave like palaestrAI 3.5's dummies.

Same sensor and actuator counts, spaces, rewards and done rule; unlike palaestrAI,
every random choice comes from the seed the step loop hands out, so a run repeats
exactly, and spaces are made once rather than once per reading (gymnasium spaces are
slow to build; values and spaces are the same as palaestrAI's).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from math import floor
from typing import TYPE_CHECKING, Any

from ..components.agent import Brain, Memory, Muscle, Objective
from ..components.environment import (
    Environment,
    EnvironmentBaseline,
    EnvironmentState,
    KnownIds,
)
from ..components.information import ActuatorInformation, RewardInformation, SensorInformation
from ..components.spaces import Discrete

if TYPE_CHECKING:
    from gymnasium import Space

SENSOR_COUNT = 10
ACTUATOR_COUNT = 10


class DummyEnvironment(Environment):
    """Ten sensors ("0".."9") and ten actuators ("0".."9"); done after `max_iter` updates.

    Discrete (default): actuators are `Discrete(100)`; sensors and the one reward
    ("Dummy Reward") are `Discrete(max_iter + 1)` and read `updates % max_iter`.
    Continuous: actuators are `Box(0, 10, shape=())`, sensors `Box(0, 2, shape=())`
    reading a random 0 or 1. Actuator values do not influence anything.
    """

    @classmethod
    def known_ids(cls, params: Mapping[str, Any]) -> KnownIds:
        ids = frozenset(str(index) for index in range(SENSOR_COUNT))
        return KnownIds(sensors=ids, actuators=frozenset(str(i) for i in range(ACTUATOR_COUNT)))

    def __init__(self, uid: str, seed: int, discrete: bool = True, max_iter: int = 10) -> None:
        super().__init__(uid, seed)
        self.discrete = discrete
        self.max_iter = max_iter
        self.iter = 0
        self._random = random.Random(seed)
        self._sensor_space: Space[Any] | Discrete | None = None
        self._actuator_space: Space[Any] | Discrete | None = None
        self._reward_space: Space[Any] | Discrete | None = None
        self._uids = [str(index) for index in range(SENSOR_COUNT)]

    def start_environment(self) -> EnvironmentBaseline:
        if self._reward_space is None:
            # palaestrio's gymnasium-free Discrete: a discrete run needs no gymnasium.
            self._reward_space = Discrete(self.max_iter + 1)
            if self.discrete:
                self._sensor_space = Discrete(self.max_iter + 1)
                self._actuator_space = Discrete(100)
            else:
                from gymnasium.spaces import Box

                self._sensor_space = Box(0, 2, shape=())
                self._actuator_space = Box(0, 10, shape=())
        self.iter = 0
        return EnvironmentBaseline(
            sensors_available=self._sensors(),
            actuators_available=[
                ActuatorInformation(0, self._actuator_space, str(index))
                for index in range(ACTUATOR_COUNT)
            ],
            simtime=0,
        )

    def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:
        self.iter += 1
        value = self.iter % self.max_iter
        return EnvironmentState(
            sensor_information=self._sensors(),
            rewards=[RewardInformation(value, self._reward_space, "Dummy Reward")],
            done=self.iter >= self.max_iter,
        )

    def _sensors(self) -> list[SensorInformation]:
        space = self._sensor_space
        if self.discrete:
            value = self.iter % self.max_iter
            return [SensorInformation(value, space, uid) for uid in self._uids]
        draw = self._random.randint
        return [SensorInformation(draw(0, 1), space, uid) for uid in self._uids]


class DummyBrain(Brain):
    """Answers every muscle with the number it sent plus one (0 for nothing)."""

    def __init__(self) -> None:
        self.dummy_value = 42

    def thinking(self, muscle_id: str, data_from_muscle: Any) -> Any:
        self.dummy_value = data_from_muscle + 1 if data_from_muscle is not None else 0
        return self.dummy_value


class DummyMuscle(Muscle):
    """Sets every actuator to a random value of its space; with `count_upwards`,
    `Discrete` actuators count up instead (the number the brain last sent, modulo n)."""

    def __init__(self, count_upwards: bool = False) -> None:
        self.count_upwards = count_upwards
        self.iter = -1
        self._random: random.Random | None = None
        self._samplers: dict[str, tuple[Any, int | tuple[int, int] | Callable[[], Any]]] = {}
        self._plan: tuple[
            list[ActuatorInformation], list[int | tuple[int, int] | Callable[[], Any]]
        ]
        self._plan = ([], [])

    def setup(self) -> None:
        self._random = random.Random(self.seed)
        self._samplers.clear()

    def propose_actions(
        self, sensors: list[SensorInformation], actuators_available: list[ActuatorInformation]
    ) -> tuple[list[ActuatorInformation], Any]:
        if self._plan[0] is not actuators_available:  # a new episode's actuators
            self._plan = (actuators_available, [self._how(a) for a in actuators_available])
        assert self._random is not None
        draw = self._random.random
        counting, count = self.count_upwards, self.iter
        for actuator, how in zip(actuators_available, self._plan[1]):  # noqa: B905 (same length)
            if type(how) is int:  # Discrete(n), the common case, kept inline
                actuator.value = count % how if counting else floor(draw() * how)
            elif type(how) is tuple:  # Discrete(n, start)
                n, start = how
                actuator.value = start + (count % n if counting else floor(draw() * n))
            else:
                actuator.value = how()  # type: ignore[operator]
        return actuators_available, self.iter

    def update(self, update: Any) -> None:
        self.iter = update

    def _how(self, actuator: ActuatorInformation) -> int | tuple[int, int] | Callable[[], Any]:
        """How to choose a value for `actuator`: n or (n, start) of a Discrete space, or a
        sampling function (kept per actuator uid and space, so a sampler's random
        sequence continues across episodes)."""
        space = actuator.space
        known = self._samplers.get(actuator.uid)
        if known is not None and (known[0] is space or known[0] == space):
            return known[1]
        if self._random is None:
            self._random = random.Random(self.seed)
        how: int | tuple[int, int] | Callable[[], Any]
        if isinstance(space, Discrete) or _is_gymnasium_discrete(space):
            how = (int(space.n), int(space.start)) if space.start else int(space.n)
        elif space is None:
            how = _nothing
        else:
            # gymnasium's own sampling on a private, seeded copy of the space.
            import copy

            own = copy.deepcopy(space)
            own.seed(self._random.randrange(2**32))
            how = own.sample
        self._samplers[actuator.uid] = (space, how)
        return how


def _nothing() -> None:
    return None


def _is_gymnasium_discrete(space: Any) -> bool:
    if space is None:
        return False
    from gymnasium.spaces import Discrete as GymnasiumDiscrete  # a component's: imported

    return isinstance(space, GymnasiumDiscrete)


class DummyObjective(Objective):
    """The sum of the rewards of the latest transition."""

    def __init__(self, params: Any = None) -> None:
        self.params = {} if params is None else params

    def internal_reward(self, memory: Memory) -> float:
        rows = memory.tail(1)
        total = 0.0
        if rows:
            for reward in rows[0].rewards:
                total += reward.value
        return float(total)
