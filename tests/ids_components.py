"""Test components for the sensor/actuator id checks (imported by name by governors)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from palaestrio.components.termination import TerminationCondition
from palaestrio.simulation.dummies import DummyEnvironment


class UndeclaredEnvironment(DummyEnvironment):
    """The dummy, but it cannot tell its ids without running."""

    @classmethod
    def known_ids(cls, params: Mapping[str, Any]) -> None:
        return None


class EarlyEnd(TerminationCondition):
    """A condition of a user's own: it may end episodes early (it does not, here)."""
