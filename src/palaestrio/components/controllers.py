"""Simulation controllers: which agents act in a step.

Every step, the controller names the acting agents; they act in that order on the
current sensor readings, then every environment updates once with their setpoints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence


class SimulationController(ABC):
    """Base class: subclasses return the indices (into the phase's agent list) of the
    agents that act in `step` (0-based, counted per episode)."""

    @abstractmethod
    def acting_agents(self, step: int, agent_count: int) -> Sequence[int]: ...


class VanillaSimulationController(SimulationController):
    """All agents act, then all environments step (palaestrAI's `Vanilla`)."""

    def __init__(self) -> None:
        self._all: tuple[int, ...] = ()

    def acting_agents(self, step: int, agent_count: int) -> Sequence[int]:
        if len(self._all) != agent_count:
            self._all = tuple(range(agent_count))
        return self._all


class TakingTurnsSimulationController(SimulationController):
    """One agent per step, round robin in file order, starting anew each episode."""

    def acting_agents(self, step: int, agent_count: int) -> Sequence[int]:
        return (step % agent_count,)
