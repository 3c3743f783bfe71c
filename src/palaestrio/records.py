"""Records a run emits while it executes: the contract between the step loop and the store.

The step loop (`palaestrio.simulation`) emits them to a `RecordSink`; the RunGovernor
batches them to the store service, which writes them to the database. Every record is
a msgspec Struct with a tag, so a list of mixed records encodes to msgpack without
pickle. Values inside (sensor readings, setpoints, rewards) are plain JSON-able data:
the step loop converts numpy scalars and arrays before it emits.

Each record has a natural key (see `record_key`): the store uses it to make a resent
batch idempotent.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

JSONValue = Any
"""A value msgpack and JSON can both carry: None, bool, int, float, str, list, dict."""


class ComponentSpec(msgspec.Struct, frozen=True):
    """A `module:Class` name with the keyword arguments it was built with."""

    name: str
    params: dict[str, JSONValue] = {}


class EnvironmentSpec(msgspec.Struct, frozen=True):
    uid: str
    environment: ComponentSpec
    reward: ComponentSpec | None = None
    state_transformer: ComponentSpec | None = None


class BrainLoad(msgspec.Struct, frozen=True):
    """An agent's `load:` key (palaestrAI's): whose brain dump to start from. Missing
    parts default to the agent itself, this run and the previous phase."""

    agent: str | None = None
    experiment_run: str | None = None
    phase: int | None = None


class AgentSpec(msgspec.Struct, frozen=True):
    name: str
    brain: ComponentSpec
    muscle: ComponentSpec
    objective: ComponentSpec
    sensors: list[str] = []
    actuators: list[str] = []
    load: BrainLoad | None = None


class PhaseStarted(msgspec.Struct, frozen=True, tag="phase_started"):
    phase: int
    """Index of the phase in the run's schedule (0-based)."""
    name: str
    mode: str
    """"train" or "test"."""
    workers: int
    episodes: int
    """Episodes per worker."""
    environments: list[EnvironmentSpec]
    agents: list[AgentSpec]
    simulation: ComponentSpec
    config: dict[str, JSONValue]
    """The phase as configured after cascading, for the record."""
    walltime: float


class PhaseEnded(msgspec.Struct, frozen=True, tag="phase_ended"):
    phase: int
    walltime: float


class EpisodeStarted(msgspec.Struct, frozen=True, tag="episode_started"):
    phase: int
    worker: int
    episode: int
    walltime: float


class EpisodeEnded(msgspec.Struct, frozen=True, tag="episode_ended"):
    phase: int
    worker: int
    episode: int
    steps: int
    """Steps the episode took."""
    walltime: float


class WorldState(msgspec.Struct, frozen=True, gc=False, tag="world_state"):
    """One environment after one step."""

    phase: int
    worker: int
    episode: int
    step: int
    environment: str
    """The environment's uid."""
    simtime: JSONValue
    sensors: dict[str, JSONValue]
    setpoints: dict[str, JSONValue]
    """Actuator values applied in this step."""
    rewards: dict[str, JSONValue]
    done: bool
    walltime: float


class MuscleAction(msgspec.Struct, frozen=True, gc=False, tag="muscle_action"):
    """One agent's decision in one step."""

    phase: int
    worker: int
    episode: int
    step: int
    agent: str
    """The agent's name."""
    sensors: dict[str, JSONValue]
    setpoints: dict[str, JSONValue]
    rewards: dict[str, JSONValue]
    objective: float
    done: bool
    walltime: float
    terminated: bool | None = None
    """The episode reached a terminal state (any environment's `terminated`); None when
    no environment distinguished it, as in palaestrAI."""
    truncated: bool | None = None
    """The episode was cut off (any environment's `truncated`); None as above."""


class BrainStored(msgspec.Struct, frozen=True, tag="brain_stored"):
    """A brain dump was written (the store's `brain_states`)."""

    phase: int
    agent: str
    tag: str | None
    path: str
    walltime: float


Record = (
    PhaseStarted
    | PhaseEnded
    | EpisodeStarted
    | EpisodeEnded
    | WorldState
    | MuscleAction
    | BrainStored
)

RecordKey = tuple[str | int, ...]


def record_key(record: Record) -> RecordKey:
    """The natural key of a record within one run instance."""
    match record:
        case WorldState():
            return (
                "w",
                record.phase,
                record.worker,
                record.episode,
                record.step,
                record.environment,
            )
        case MuscleAction():
            return ("m", record.phase, record.worker, record.episode, record.step, record.agent)
        case EpisodeStarted() | EpisodeEnded():
            return ("e", record.phase, record.worker, record.episode)
        case PhaseStarted() | PhaseEnded():
            return ("p", record.phase)
        case BrainStored():
            walltime_us = round(record.walltime * 1_000_000)
            return ("b", record.phase, record.agent, record.tag or "", walltime_us)


class RecordSink(Protocol):
    """Where the step loop puts its records.

    `emit` may suspend (back-pressure): a sink that sends records to the store waits
    there when too many are unacknowledged. The step loop calls `emit` in order.
    """

    async def emit(self, record: Record) -> None: ...


class NullSink:
    """Drops every record (benchmarks, debugging)."""

    async def emit(self, record: Record) -> None:
        return None


class ListSink:
    """Keeps every record in a list (tests, debugging)."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    async def emit(self, record: Record) -> None:
        self.records.append(record)
