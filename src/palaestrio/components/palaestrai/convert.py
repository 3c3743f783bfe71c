"""Conversions between palaestrio's and palaestrAI's information objects and states.

Spaces need none but palaestrio's gymnasium-free `Discrete` (its dummies'), which
palaestrAI's components get as gymnasium's; palaestrAI's `Box`, `Discrete`, ... subclass
gymnasium's, which is what palaestrio checks values against.
"""

from __future__ import annotations

import copy
from typing import Any

from palaestrai.agent import ActuatorInformation as PActuator
from palaestrai.agent import RewardInformation as PReward
from palaestrai.agent import SensorInformation as PSensor
from palaestrai.environment import EnvironmentBaseline as PBaseline
from palaestrai.environment import EnvironmentState as PState
from palaestrai.types import SimTime

from ..environment import EnvironmentBaseline, EnvironmentState
from ..information import ActuatorInformation, RewardInformation, SensorInformation
from ..spaces import as_gymnasium

_PLAIN = (int, float, bool, str, type(None))


def _copy(value: Any) -> Any:
    return value if type(value) in _PLAIN else copy.deepcopy(value)


def to_palaestrai_sensors(sensors: list[Any]) -> list[Any]:
    """Fresh palaestrAI sensors (palaestrAI deep-copies readings for each muscle)."""
    return [PSensor(_copy(s.value), as_gymnasium(s.space), s.uid) for s in sensors]


def to_palaestrai_actuators(actuators: list[Any]) -> list[Any]:
    return [PActuator(_copy(a.value), as_gymnasium(a.space), a.uid) for a in actuators]


def to_palaestrai_rewards(rewards: list[Any]) -> list[Any]:
    return [PReward(r.value, as_gymnasium(r.space), r.uid) for r in rewards]


def from_palaestrai_sensors(sensors: list[Any]) -> list[SensorInformation]:
    return [SensorInformation(s.value, s.space, s.uid) for s in sensors]


def from_palaestrai_actuators(actuators: list[Any]) -> list[ActuatorInformation]:
    return [ActuatorInformation(a.value, a.space, a.uid) for a in actuators]


def from_palaestrai_rewards(rewards: list[Any]) -> list[RewardInformation]:
    return [RewardInformation(r.value, r.space, r.uid) for r in rewards]


def simtime(value: Any) -> Any:
    """A palaestrAI SimTime as plain data: its ticks, or ticks and an ISO timestamp."""
    if not isinstance(value, SimTime):
        return value
    if value.simtime_timestamp is None:
        return value.simtime_ticks
    return {"ticks": value.simtime_ticks, "timestamp": value.simtime_timestamp.isoformat()}


def baseline(value: Any) -> EnvironmentBaseline:
    """palaestrAI's EnvironmentBaseline, or its older `(sensors, actuators)` tuple."""
    if isinstance(value, tuple) and len(value) == 2:
        sensors, actuators, start = value[0], value[1], None
    elif isinstance(value, PBaseline):
        sensors, actuators = value.sensors_available, value.actuators_available
        start = simtime(value.simtime)
    else:
        raise TypeError(f"start_environment returned {value!r}; expected an EnvironmentBaseline")
    return EnvironmentBaseline(
        from_palaestrai_sensors(_unique(sensors)),
        from_palaestrai_actuators(_unique(actuators)),
        start,
    )


def _unique(infos: list[Any]) -> list[Any]:
    """The first of each uid: palaestrAI tolerates an environment offering one twice
    (palaestrai-environments' random environments do after a reset)."""
    seen: set[Any] = set()
    unique = []
    for info in infos:
        if info.uid not in seen:
            seen.add(info.uid)
            unique.append(info)
    return unique


def state(value: Any) -> EnvironmentState:
    """palaestrAI's EnvironmentState, or its older `(sensors, rewards, done)` tuple."""
    if isinstance(value, tuple) and len(value) == 3:
        return EnvironmentState(
            from_palaestrai_sensors(value[0]), from_palaestrai_rewards(value[1]), bool(value[2])
        )
    if not isinstance(value, PState):
        raise TypeError(f"update returned {value!r}; expected an EnvironmentState")
    return EnvironmentState(
        from_palaestrai_sensors(value.sensor_information),
        from_palaestrai_rewards(value.rewards),
        bool(value.done),
        value.terminated,
        value.truncated,
        simtime(value.simtime),
    )


def to_palaestrai_state(value: EnvironmentState) -> Any:
    return PState(
        sensor_information=to_palaestrai_sensors(value.sensor_information),
        rewards=to_palaestrai_rewards(value.rewards),
        done=value.done,
        simtime=None
        if value.simtime is None
        else SimTime(simtime_ticks=value.simtime)
        if isinstance(value.simtime, int)
        else None,
        terminated=value.terminated,
        truncated=value.truncated,
    )
