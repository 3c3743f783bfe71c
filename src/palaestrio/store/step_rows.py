"""Step records (world states, muscle actions) as rows: the store's hot path.

They are the volume, so they bypass SQLAlchemy's per-row parameter processing. Their
INSERT is compiled by SQLAlchemy for the dialect once, and rows go to the driver's
executemany as tuples of ready values (JSON as text, timestamps as UTC text, which the
compiled statement casts on PostgreSQL).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable

import msgspec
import sqlalchemy as sa

from palaestrio.records import MuscleAction, Record, WorldState
from palaestrio.store import schema
from palaestrio.store.engine import insert_for, to_json
from palaestrio.store.errors import RequestRejected

_json_encoder = msgspec.json.Encoder()


def to_datetime(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


class TimestampText:
    """Formats epoch seconds as UTC timestamp text, fast for runs of nearby times.

    SQLite gets SQLAlchemy's own storage format (so reading through SQLAlchemy yields
    datetimes); PostgreSQL gets the same with an explicit `+00` offset. The records of
    one step share a walltime, and a batch spans few seconds: both are cached.
    """

    def __init__(self, suffix: str) -> None:
        self._suffix = suffix
        self._second = math.nan
        self._prefix = ""
        self._last = math.nan
        self._last_text = ""

    def __call__(self, seconds: float) -> str:
        if seconds == self._last:
            return self._last_text
        # Rounded like datetime.fromtimestamp: microseconds half-to-even, carried over.
        fraction, whole = math.modf(seconds)
        micros = round(fraction * 1_000_000)
        if micros >= 1_000_000:
            whole, micros = whole + 1, micros - 1_000_000
        elif micros < 0:
            whole, micros = whole - 1, micros + 1_000_000
        if whole != self._second:
            self._second = whole
            self._prefix = to_datetime(whole).strftime("%Y-%m-%d %H:%M:%S")
        self._last = seconds
        self._last_text = f"{self._prefix}.{micros:06d}{self._suffix}"
        return self._last_text


class PhaseIds(msgspec.Struct):
    """The ids a phase's step rows refer to."""

    id: int
    mode: str | None
    environments: dict[tuple[str, int], int]
    """(environment uid, worker) -> environments.id"""
    agents: dict[str, int]
    """agent name -> agents.id"""


class BatchContext:
    """One batch's view: its connection and instance, and messages naming its records."""

    def __init__(
        self,
        connection: sa.Connection,
        instance_id: int,
        instance_uid: str,
        lookup: Callable[[sa.Connection, int, int], PhaseIds | None],
    ) -> None:
        self.connection = connection
        self.instance_id = instance_id
        self.instance_uid = instance_uid
        self._lookup = lookup

    def phase(self, record: Record) -> PhaseIds:
        found = self._lookup(self.connection, self.instance_id, record.phase)
        if found is None:
            raise RequestRejected(
                f"{describe(record)} belongs to phase {record.phase} of run instance "
                f"{self.instance_uid!r}, which has no phase_started record"
            )
        return found

    def unknown(self, record: Record, kind: str, name: str) -> str:
        return (
            f"{describe(record)} names {kind} {name!r}, which phase {record.phase} of run "
            f"instance {self.instance_uid!r} does not have"
        )


class StepRows:
    """Writes a batch's world states and muscle actions, for one dialect."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self._timestamp = TimestampText("+00" if dialect.name == "postgresql" else "")
        self._world_state_sql = bulk_insert_sql(dialect, schema.world_states)
        self._muscle_action_sql = bulk_insert_sql(dialect, schema.muscle_actions)

    def write_world_states(self, context: BatchContext, records: list[WorldState]) -> None:
        timestamp, json = self._timestamp, _json_encoder.encode
        rows = []
        phase: PhaseIds | None = None
        phase_number: int | None = None
        for record in records:
            if phase is None or record.phase != phase_number:
                phase, phase_number = context.phase(record), record.phase
            environment_id = phase.environments.get((record.environment, record.worker))
            if environment_id is None:
                raise RequestRejected(context.unknown(record, "environment", record.environment))
            simtime = record.simtime
            ticks = simtime if type(simtime) is int else None
            raw = None if simtime is None or ticks is not None else to_json(simtime)
            rows.append(
                (
                    timestamp(record.walltime),
                    ticks,
                    raw,
                    record.episode,
                    record.step,
                    json(record.sensors).decode(),
                    json(record.setpoints).decode(),
                    json(record.rewards).decode(),
                    record.done,
                    phase.mode,
                    environment_id,
                )
            )
        context.connection.exec_driver_sql(self._world_state_sql, rows)

    def write_muscle_actions(self, context: BatchContext, records: list[MuscleAction]) -> None:
        timestamp, json = self._timestamp, _json_encoder.encode
        rows = []
        phase: PhaseIds | None = None
        phase_number: int | None = None
        for record in records:
            if phase is None or record.phase != phase_number:
                phase, phase_number = context.phase(record), record.phase
            agent_id = phase.agents.get(record.agent)
            if agent_id is None:
                raise RequestRejected(context.unknown(record, "agent", record.agent))
            rows.append(
                (
                    timestamp(record.walltime),
                    agent_id,
                    str(record.worker),
                    record.episode,
                    record.step,
                    json(record.sensors).decode(),
                    json(record.setpoints).decode(),
                    json(record.rewards).decode(),
                    record.objective,
                    record.done,
                    record.terminated,
                    record.truncated,
                    phase.mode,
                )
            )
        context.connection.exec_driver_sql(self._muscle_action_sql, rows)


def bulk_insert_sql(dialect: sa.Dialect, table: sa.Table) -> str:
    """The dialect's INSERT ... ON CONFLICT DO NOTHING for all columns but `id`."""
    if not dialect.positional:
        # psycopg takes %s as well: positional rows are cheaper to build than dicts.
        dialect = type(dialect)(paramstyle="format")  # type: ignore[call-arg]
    columns = [column.name for column in table.columns if column.name != "id"]
    statement = insert_for(dialect)(table).on_conflict_do_nothing()
    compiled = statement.compile(dialect=dialect, column_keys=columns)
    if compiled.positiontup != columns:
        raise AssertionError(f"unexpected parameter order {compiled.positiontup}")
    return str(compiled.string)


def describe(record: Record) -> str:
    fields = ", ".join(
        f"{name} {getattr(record, name)}"
        for name in ("phase", "worker", "episode", "step")
        if hasattr(record, name)
    )
    return f"{type(record).__struct_config__.tag} ({fields})"
