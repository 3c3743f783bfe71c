"""Adapters for palaestrAI brains, muscles and objectives.

palaestrAI runs every brain and every rollout worker in a process of its own; hARL
seeds the process-wide `random`, `numpy.random` and torch generators in `setup()`.
Here they share one process, so each brain and each muscle gets generator states of its
own (`Isolated`), swapped in around every call into it. Brains see palaestrAI's pandas
`Memory` filled as palaestrAI's learner fills it (only complete transitions), think,
store at an episode's end and hand out `pop_statistics()` as palaestrAI's learner does;
objectives rate a palaestrAI `Memory` of their muscle's transitions; muscles get the
same actuator objects every step (values persist across steps and episodes).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from palaestrai.agent import Memory as PMemory
from palaestrai.types import Mode as PMode

from ..agent import Brain, Memory, MemoryRow, Muscle, Objective
from ..information import ActuatorInformation, SensorInformation
from . import convert


class Isolated:
    """Generator states of one component: `with isolated:` swaps them in and out."""

    def __init__(self) -> None:
        self._own: tuple[Any, ...] | None = None
        self._outer: tuple[Any, ...] = ()

    @staticmethod
    def _capture() -> tuple[Any, ...]:
        torch = sys.modules.get("torch")
        torch_state = torch.get_rng_state() if torch is not None else None
        return random.getstate(), np.random.get_state(), torch_state

    @staticmethod
    def _restore(states: tuple[Any, ...]) -> None:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch = sys.modules.get("torch")
        if torch is not None and states[2] is not None:
            torch.set_rng_state(states[2])

    def __enter__(self) -> None:
        self._outer = self._capture()
        if self._own is not None:
            self._restore(self._own)

    def __exit__(self, *exc: object) -> None:
        self._own = self._capture()
        self._restore(self._outer)


def _transition(memory: Any, row: MemoryRow, **extra: Any) -> None:
    memory.append(
        row.muscle_id,
        sensor_readings=convert.to_palaestrai_sensors(row.sensor_readings),
        actuator_setpoints=convert.to_palaestrai_actuators(row.actuator_setpoints),
        rewards=convert.to_palaestrai_rewards(row.rewards),
        done=row.done,
        terminated=row.terminated,
        truncated=row.truncated,
        **extra,
    )


class _BrainMemory(Memory):
    """What palaestrio's loop appends brain rows to: palaestrAI's learner's rule."""

    def __init__(self, brain: BrainAdapter) -> None:
        super().__init__(1)
        self._brain = brain
        self.append = self._append

    def _append(self, row: MemoryRow) -> None:
        self._brain.last_done[row.muscle_id] = row.done
        if (
            row.sensor_readings
            and row.setpoint_values
            and row.rewards
            and row.objective is not None
        ):
            objective = np.array([row.objective])
            _transition(self._brain.inner.memory, row, objective=objective)


class BrainAdapter(Brain):
    def __init__(self, inner: Any, name: str, make: Callable[..., Any] | None = None) -> None:
        """`inner` is the palaestrAI brain, or None when `make(seed=, sensors=,
        actuators=)` makes it (a brain with palaestrAI's older constructor)."""
        self.inner = inner
        self.make = make
        self.name = name
        self.isolated = Isolated()
        self.last_done: dict[str, bool] = {}
        self._memory = _BrainMemory(self)

    def _prepare(self) -> None:
        """What palaestrAI sets before loading a dump and `setup()`."""
        sensors = convert.to_palaestrai_sensors(self.sensors)
        actuators = convert.to_palaestrai_actuators(self.actuators)
        if self.inner is None:
            assert self.make is not None
            with self.isolated:
                self.inner = self.make(seed=self.seed, sensors=sensors, actuators=actuators)
        inner = self.inner
        inner._seed = self.seed
        inner._name = self.name
        inner.sensors = sensors
        inner.actuators = actuators
        inner.mode = PMode[self.mode.name]
        inner._dumpers = [] if self.dumper is None else [self.dumper]

    def setup(self) -> None:
        self._prepare()
        with self.isolated:
            self.inner.setup()
        self.inner._memory = PMemory()

    def thinking(self, muscle_id: str, data_from_muscle: Any) -> Any:
        inner = self.inner
        with self.isolated:
            update = inner.thinking(muscle_id, data_from_muscle)
            if self.last_done.pop(muscle_id, False):
                inner.store()
            inner.pop_statistics()
        return update

    def store(self) -> None:
        with self.isolated:
            self.inner.store()

    def load(self) -> None:
        """palaestrAI's `try_load_brain_dump` (before `setup`, as palaestrAI calls it)."""
        self._prepare()
        with self.isolated:
            self.inner.try_load_brain_dump()


class MuscleAdapter(Muscle):
    propose_at_episode_end = True

    def __init__(self, inner: Any, name: str) -> None:
        self.inner = inner
        self.name = name
        inner._uid = name
        self.isolated = Isolated()
        self._actuators: dict[str, Any] = {}
        self.dumper: Any = None
        """The brain's dumper: palaestrAI muscles load models from it."""

    def setup(self) -> None:
        self.inner._model_loaders = [] if self.dumper is None else [self.dumper]
        self.inner._mode = PMode.TRAIN  # as palaestrAI: setup in TRAIN even when testing
        with self.isolated:
            self.inner.setup()
        self.inner._mode = PMode[self.mode.name]

    def _persistent(self, actuator: ActuatorInformation) -> Any:
        own = self._actuators.get(actuator.uid)
        if own is None:
            own = self._actuators[actuator.uid] = convert.to_palaestrai_actuators([actuator])[0]
        return own

    def propose_actions(
        self, sensors: list[SensorInformation], actuators_available: list[ActuatorInformation]
    ) -> tuple[list[ActuatorInformation], Any]:
        actuators = [self._persistent(actuator) for actuator in actuators_available]
        readings = convert.to_palaestrai_sensors(sensors)
        with self.isolated:
            proposal = self.inner.propose_actions(readings, actuators)
            self.inner.pop_statistics()
        setpoints, data = proposal if isinstance(proposal, tuple) else (proposal, None)
        return convert.from_palaestrai_actuators(list(setpoints)), data

    def update(self, update: Any) -> None:
        with self.isolated:
            self.inner.update(update)

    def reset(self) -> None:
        with self.isolated:
            self.inner.reset()

    def teardown(self) -> None:
        with self.isolated:
            self.inner.teardown()


class ObjectiveAdapter(Objective):
    """Rates the muscle's transitions, kept in a palaestrAI Memory as its rollout
    worker keeps them."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.memory = PMemory()

    def internal_reward(self, memory: Memory) -> float:
        row = memory.tail(1)[0]
        _transition(self.memory, row)
        value = float(self.inner.internal_reward(self.memory))
        self.memory.append(row.muscle_id, objective=np.array([value]))
        return value


def wrap(component: Any, kind: str, name: str) -> Any:
    if kind == "brain":
        return BrainAdapter(component, name)
    if kind == "muscle":
        return MuscleAdapter(component, name)
    return ObjectiveAdapter(component)
