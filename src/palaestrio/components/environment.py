"""The environment interface (method names as in palaestrAI 3.5).

An environment offers sensors and actuators under its own local ids ("0", "power");
agents name them with the environment's uid in front ("myenv.0"). The step loop adds
and strips that prefix, so environments never see it. Every method may be a plain
function or a coroutine function.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from typing import Any

import msgspec

from .information import ActuatorInformation, RewardInformation, SensorInformation


class EnvironmentBaseline(msgspec.Struct, gc=False):
    """What an environment offers after it started: sensors (with initial readings),
    actuators, and its start time (any plain value, e.g. a tick count)."""

    sensors_available: list[SensorInformation]
    actuators_available: list[ActuatorInformation]
    simtime: Any = None


class EnvironmentState(msgspec.Struct, gc=False):
    """An environment after one update.

    `done` ends the episode. `terminated` (a real terminal state) and `truncated` (cut
    off from outside, e.g. a time limit) refine it as in gymnasium; None means "not
    distinguished". `simtime` defaults to the number of updates in this episode.
    """

    sensor_information: list[SensorInformation]
    rewards: list[RewardInformation]
    done: bool
    terminated: bool | None = None
    truncated: bool | None = None
    simtime: Any = None


class KnownIds(msgspec.Struct, frozen=True):
    """What `Environment.known_ids` returns: local sensor and actuator ids."""

    sensors: frozenset[str]
    actuators: frozenset[str]


class Environment(ABC):
    """Base class of environments.

    The constructor receives `uid` and `seed` as keyword arguments, followed by the
    `params` of the experiment file. Subclasses implement `start_environment` and
    `update`; `reset` (default: `shutdown` then `start_environment`) and `shutdown` are
    optional. Before the first start, the step loop sets `reward` to the environment's
    configured `Reward` object (or None); using it is up to the environment.
    """

    reward: Reward | None = None

    def __init__(self, uid: str, seed: int) -> None:
        self.uid = uid
        self.seed = seed

    @classmethod
    def known_ids(cls, params: Mapping[str, Any]) -> KnownIds | None:
        """The sensor and actuator ids (local, without the uid) an environment built with
        `params` will offer, if it can tell without running; None (default): it cannot.
        `experiment-check-syntax` then refuses agents' ids that are not among them."""
        return None

    @abstractmethod
    def start_environment(self) -> EnvironmentBaseline | Awaitable[EnvironmentBaseline]:
        """Start (or restart) the environment; called before the first episode."""

    @abstractmethod
    def update(
        self, actuators: list[ActuatorInformation]
    ) -> EnvironmentState | Awaitable[EnvironmentState]:
        """Apply the setpoints of this step (only those set in it) and advance."""

    def reset(self) -> EnvironmentBaseline | Awaitable[EnvironmentBaseline]:
        """Prepare a new episode. Not overriding it means `shutdown` + `start_environment`."""
        raise NotImplementedError

    def shutdown(self) -> Awaitable[None] | None:
        """Release what the environment holds; called once at the end of a phase."""
        return None


class Reward(ABC):
    """Computes rewards from an environment's state (palaestrAI's `Reward`).

    Configured per environment with the `reward` key; the environment decides whether
    and how it uses `self.reward`.
    """

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def __call__(self, state: EnvironmentState) -> list[RewardInformation]: ...


class EnvironmentStateTransformer(ABC):
    """Rewrites an environment's state after every update, before agents and records see
    it (palaestrAI's `EnvironmentStateTransformer`, the `state_transformer` key)."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def __call__(self, state: EnvironmentState) -> EnvironmentState: ...
