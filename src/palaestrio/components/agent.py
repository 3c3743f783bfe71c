"""Agent interfaces: Muscle (acts), Brain (learns), Objective (rates), and their Memory.

Method names follow palaestrAI 3.5, so porting a component means changing its imports.
One agent has one brain per phase; each worker has its own muscle and objective, and
all muscles of an agent share its brain.

Per step of an agent, the step loop calls, in this order:
1. `brain.thinking(muscle_id, data_for_brain)` with what the muscle returned last time
   (None at an episode's first step); a result other than None goes to `muscle.update`.
2. `muscle.propose_actions(sensors, actuators_available)`.
3. After the environments updated: the transition (sensors, setpoints, rewards, done)
   goes into the muscle's and the brain's memory, and `objective.internal_reward(memory)`
   rates it.
When an episode ends, the brain thinks once more about each muscle's last transition.
"""

from __future__ import annotations

import enum
import io
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Protocol

import msgspec

from .information import ActuatorInformation, RewardInformation, SensorInformation


class Mode(enum.StrEnum):
    TRAIN = "train"
    TEST = "test"


class MemoryRow(msgspec.Struct, gc=False):
    """One transition of one muscle: what it sensed, the setpoints it chose, the rewards
    that followed, and whether the episode ended. `objective` is filled in right after
    the row is appended, by the agent's objective.

    Setpoints are kept as `setpoint_values` (actuator uid -> value as the muscle set it)
    with their spaces; `actuator_setpoints` makes ActuatorInformation objects of them
    when asked (most steps nobody asks, and building them costs a tenth of a step).
    """

    muscle_id: str
    sensor_readings: list[SensorInformation]
    setpoint_values: dict[str, Any]
    rewards: list[RewardInformation]
    done: bool
    objective: float | None = None
    setpoint_spaces: dict[str, Any] | None = None
    terminated: bool | None = None
    """A terminal state was reached (gymnasium's sense); None: not distinguished."""
    truncated: bool | None = None
    """The episode was cut off from outside; None: not distinguished."""

    @property
    def actuator_setpoints(self) -> list[ActuatorInformation]:
        spaces = self.setpoint_spaces or {}
        return [
            ActuatorInformation(value, spaces.get(uid), uid)
            for uid, value in self.setpoint_values.items()
        ]


class Memory:
    """The most recent transitions, oldest first, at most `size_limit` of them."""

    append: Callable[[MemoryRow], None]
    """Add a row (dropping the oldest when full)."""

    def __init__(self, size_limit: int = 10_000) -> None:
        self._use(deque(maxlen=size_limit))

    def _use(self, rows: deque[MemoryRow]) -> None:
        self._rows = rows
        self.append = rows.append  # the deque's own method: no Python call per step

    @property
    def size_limit(self) -> int:
        assert self._rows.maxlen is not None
        return self._rows.maxlen

    @size_limit.setter
    def size_limit(self, limit: int) -> None:
        self._use(deque(self._rows, maxlen=limit))

    def tail(self, n: int = 1) -> list[MemoryRow]:
        """The last `n` rows (fewer if the memory holds fewer), oldest first."""
        rows = self._rows
        if n == 1:  # what most objectives ask for
            return [rows[-1]] if rows else []
        if n >= len(rows):
            return list(rows)
        return [rows[i] for i in range(len(rows) - n, len(rows))]

    def clear(self) -> None:
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[MemoryRow]:
        return iter(self._rows)


class _AgentPart:
    """What the step loop tells brains and muscles about themselves before `setup`."""

    name: str = ""
    """The agent's name from the experiment file."""
    seed: int = 0
    """A seed derived from the run's seed, the phase, the agent and the worker."""
    mode: Mode = Mode.TRAIN
    sensors: list[SensorInformation]
    actuators: list[ActuatorInformation]
    _memory: Memory | None = None

    @property
    def memory(self) -> Memory:
        if self._memory is None:
            self._memory = Memory()
        return self._memory

    def setup(self) -> None:
        """Called once per phase, after name, seed, mode, sensors and actuators are set."""


class Muscle(_AgentPart, ABC):
    """The acting part of an agent; one per agent and worker.

    `uid` is the agent's name (as in palaestrAI). Muscles are built with the `params`
    of the experiment file as keyword arguments.
    """

    propose_at_episode_end: bool = False
    """palaestrAI's semantics: when an episode ended, after the brain's last thinking,
    propose once more on the final readings (the setpoints are discarded). The adapter
    of palaestrAI muscles sets it; results of hARL agents depend on it."""

    @property
    def uid(self) -> str:
        return self.name

    @abstractmethod
    def propose_actions(
        self, sensors: list[SensorInformation], actuators_available: list[ActuatorInformation]
    ) -> tuple[list[ActuatorInformation], Any] | list[ActuatorInformation]:
        """Set values on (some of) `actuators_available` and return them, with any data
        for the brain: `(setpoints, data_for_brain)`. Returning only the list means no
        data. Returning the given objects is fine; they are not kept across steps."""

    def update(self, update: Any) -> None:
        """Receive what the brain's `thinking` returned (if not None)."""

    def reset(self) -> None:
        """Called after an episode ended, before the next one starts."""

    def teardown(self) -> None:
        """Called once at the end of the phase."""


class Dumper(Protocol):
    """Where a brain's dumps go and come from (palaestrAI's BrainDumper methods)."""

    def save(self, brain_state: BinaryIO, tag: str | None = None) -> None: ...
    def load(self, tag: str | None = None) -> BinaryIO: ...


class Brain(_AgentPart, ABC):
    """The learning part of an agent, shared by the agent's muscles in all workers.

    A brain that can persist its state overrides `store` (write it with `store_dump`)
    and `load` (read it with `load_dump`). The step loop calls `store` when a phase
    ends, and `load` before `setup` when there is a dump to start from: the previous
    phase's of the same agent, or what the agent's `load:` key names.
    """

    dumper: Dumper | None = None

    def store(self) -> None:
        """Save the brain's state with `store_dump` (default: nothing to save)."""

    def load(self) -> None:
        """Restore the brain's state from `load_dump` (default: nothing to restore)."""

    def store_dump(self, data: bytes, tag: str | None = None) -> None:
        """Write `data` as this brain's dump (`tag` tells several dumps apart)."""
        if self.dumper is not None:
            self.dumper.save(io.BytesIO(data), tag)

    def load_dump(self, tag: str | None = None) -> bytes | None:
        """The dump to start from, or None if there is none."""
        if self.dumper is None:
            return None
        try:
            return self.dumper.load(tag).read()
        except FileNotFoundError:
            return None

    @abstractmethod
    def thinking(self, muscle_id: str, data_from_muscle: Any) -> Any:
        """Learn from the muscle's data (and `self.memory`); return an update for the
        muscle, or None for none."""


class Objective(ABC):
    """Rates an agent's latest transition: the agent's internal reward."""

    @abstractmethod
    def internal_reward(self, memory: Memory) -> float:
        """The objective value of the last row of `memory` (a number)."""
