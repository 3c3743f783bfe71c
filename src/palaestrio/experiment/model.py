"""A validated experiment run: msgspec Structs, so a run travels to a RunGovernor
process as msgpack (`msgspec.msgpack.encode(run)`, `decode(data, type=ExperimentRun)`).

Component names in here are resolved (palaestrAI aliases replaced by palaestrio's
names); the other process imports them again by name.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ..records import AgentSpec, ComponentSpec, EnvironmentSpec, JSONValue


class PhaseSpec(msgspec.Struct, frozen=True):
    """One phase after cascading (everything inherited is filled in)."""

    name: str
    mode: Literal["train", "test"]
    workers: int
    episodes: int
    """Episodes per worker."""
    environments: list[EnvironmentSpec]
    agents: list[AgentSpec]
    simulation: ComponentSpec
    conditions: list[ComponentSpec]
    """The phase's termination conditions (`simulation.conditions`)."""
    config: dict[str, JSONValue]
    """The phase as written after cascading (names as the user wrote them)."""


class ExperimentRun(msgspec.Struct, frozen=True):
    """Everything needed to execute one experiment run."""

    uid: str
    seed: int
    version: str
    phases: list[PhaseSpec]
    run_condition: ComponentSpec
    """The run's termination condition (`run_config.condition`)."""
    experiment_uid: str | None = None
    source: str | None = None
    """The file the run was read from, if any."""
    document: str | None = None
    """The YAML text the run was read from (the file's or `load_experiment_run_text`'s),
    so that whoever stores or shows the run never reads the file again."""
