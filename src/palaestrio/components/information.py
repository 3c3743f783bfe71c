"""Sensor readings, actuator setpoints and rewards, as palaestrAI names them.

Each is a small mutable value object: `value`, a gymnasium `space` describing it, and a
`uid`, positional in that order as in palaestrAI. They are msgspec Structs without
garbage-collector tracking: a step makes a few dozen of them, and as plain classes they
cost three times as much to build and add to every GC pass. (Do not build reference
cycles through them; the collector would not see those.)

Constructing one does not check the value against the space (palaestrAI does, and it
costs more than a whole step of a small environment); the step loop checks every
actuator value an agent proposes, which is where a wrong value would do damage, and
names the actuator when it is wrong.
"""

from __future__ import annotations

from typing import Any

import msgspec


class SensorInformation(msgspec.Struct, gc=False):
    """One sensor reading. `sensor()` returns its value, as in palaestrAI."""

    value: Any = None
    space: Any = None
    """A gymnasium space (`Box`, `Discrete`, `MultiBinary`, `MultiDiscrete`, `Tuple`)."""
    uid: Any = None
    value_ids: list[str] | None = None

    def __call__(self) -> Any:
        return self.value


class ActuatorInformation(msgspec.Struct, gc=False):
    """One actuator. A muscle sets its value by calling it, `actuator(42)`, or by
    assigning `actuator.value`."""

    value: Any = None
    space: Any = None
    uid: Any = None
    value_ids: list[str] | None = None

    def __call__(self, value: Any) -> None:
        self.value = value


class RewardInformation(msgspec.Struct, gc=False):
    """One reward an environment issues after a step."""

    value: Any = None
    space: Any = None
    uid: Any = None

    def __call__(self) -> Any:
        return self.value
