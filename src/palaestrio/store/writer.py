"""Applies store requests to the database: one batch or event per transaction.

The writer is synchronous and owns one connection; the service calls it from a worker
thread, one request at a time. Every insert is keyed by the record's natural key and
ignores conflicts, so applying the same request twice leaves the same rows.

Step records (world states, muscle actions) are the volume: they bypass SQLAlchemy's
per-row parameter processing. Their INSERT is compiled by SQLAlchemy for the dialect
once, and rows go to the driver's executemany as tuples of ready values (JSON as text,
timestamps as UTC text, which the compiled statement casts on PostgreSQL).
"""

from __future__ import annotations

import datetime
import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
import yaml
from sqlalchemy.dialects import postgresql, sqlite

from palaestrio.records import (
    EpisodeEnded,
    EpisodeStarted,
    MuscleAction,
    PhaseEnded,
    PhaseStarted,
    Record,
    WorldState,
)
from palaestrio.store import schema
from palaestrio.store.engine import to_json
from palaestrio.store.errors import RequestRejected
from palaestrio.store.lifecycle import next_status
from palaestrio.store.messages import (
    Acknowledged,
    Cancelled,
    Failed,
    RecordBatch,
    Running,
    Scheduled,
    StatusEvent,
    StoreRequest,
)

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


class _Phase(msgspec.Struct):
    id: int
    mode: str | None
    environments: dict[tuple[str, int], int]
    """(environment uid, worker) -> environments.id"""
    agents: dict[str, int]
    """agent name -> agents.id"""


class StoreWriter:
    """Writes requests through one connection of `engine` (from one thread at a time)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._connection: sa.Connection | None = None
        self._insert: Callable[..., Any] = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )
        self._timestamp = TimestampText("+00" if engine.dialect.name == "postgresql" else "")
        self._world_state_sql = self._bulk_insert_sql(schema.world_states)
        self._muscle_action_sql = self._bulk_insert_sql(schema.muscle_actions)
        self._instances: dict[str, int] = {}
        self._phases: dict[tuple[int, int], _Phase] = {}

    def apply(self, request: StoreRequest) -> Acknowledged:
        """Writes `request` in one transaction and returns the acknowledgement.

        Raises `RequestRejected` for a request that can never succeed as sent and
        SQLAlchemy errors for what the database refused; nothing is written then.
        """
        connection = self._connect()
        try:
            with connection.begin():
                if isinstance(request, RecordBatch):
                    self._write_records(connection, request)
                    return Acknowledged(written=len(request.records))
                return Acknowledged(status=self._apply_status(connection, request))
        except BaseException:
            # Ids cached during the failed transaction may not exist.
            self._instances.clear()
            self._phases.clear()
            if connection.invalidated:
                self._disconnect()
            raise

    def close(self) -> None:
        self._disconnect()
        self._engine.dispose()

    def _connect(self) -> sa.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self._engine.connect()
        return self._connection

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _bulk_insert_sql(self, table: sa.Table) -> str:
        """The dialect's INSERT ... ON CONFLICT DO NOTHING for all columns but `id`."""
        dialect = self._engine.dialect
        if not dialect.positional:
            # psycopg takes %s as well: positional rows are cheaper to build than dicts.
            dialect = type(dialect)(paramstyle="format")  # type: ignore[call-arg]
        columns = [column.name for column in table.columns if column.name != "id"]
        statement = self._insert(table).on_conflict_do_nothing()
        compiled = statement.compile(dialect=dialect, column_keys=columns)
        if compiled.positiontup != columns:
            raise AssertionError(f"unexpected parameter order {compiled.positiontup}")
        return str(compiled.string)

    # --- records ---------------------------------------------------------------------

    def _write_records(self, connection: sa.Connection, batch: RecordBatch) -> None:
        instance_id = self._instance_id(connection, batch.instance_uid)
        if instance_id is None:
            raise RequestRejected(
                f"records for unknown run instance {batch.instance_uid!r}: no 'scheduled' "
                "event was recorded for it"
            )
        groups: dict[type, list[Any]] = {kind: [] for kind in _WRITE_ORDER}
        for record in batch.records:
            groups[type(record)].append(record)
        context = _Context(self, connection, instance_id, batch.instance_uid)
        for phase_started in groups[PhaseStarted]:
            self._write_phase(context, phase_started)
        self._write_episodes_started(context, groups[EpisodeStarted])
        if groups[WorldState]:
            rows = self._world_state_rows(context, groups[WorldState])
            connection.exec_driver_sql(self._world_state_sql, rows)
        if groups[MuscleAction]:
            rows = self._muscle_action_rows(context, groups[MuscleAction])
            connection.exec_driver_sql(self._muscle_action_sql, rows)
        self._write_episodes_ended(context, groups[EpisodeEnded])
        for phase_ended in groups[PhaseEnded]:
            connection.execute(
                sa.update(schema.experiment_run_phases)
                .where(schema.experiment_run_phases.c.id == context.phase(phase_ended).id)
                .values(ended_at=to_datetime(phase_ended.walltime))
            )

    def _instance_id(self, connection: sa.Connection, uid: str) -> int | None:
        found = self._instances.get(uid)
        if found is None:
            table = schema.experiment_run_instances
            found = connection.execute(sa.select(table.c.id).where(table.c.uid == uid)).scalar()
            if found is not None:
                self._instances[uid] = found
        return found

    def phase(self, connection: sa.Connection, instance_id: int, number: int) -> _Phase | None:
        key = (instance_id, number)
        found = self._phases.get(key)
        if found is not None:
            return found
        phases = schema.experiment_run_phases
        row = connection.execute(
            sa.select(phases.c.id, phases.c.mode).where(
                phases.c.experiment_run_instance_id == instance_id, phases.c.number == number
            )
        ).first()
        if row is None:
            return None
        environments, agents = schema.environments, schema.agents
        found = _Phase(
            id=row.id,
            mode=row.mode,
            environments={
                (uid, int(worker)): id_
                for id_, uid, worker in connection.execute(
                    sa.select(
                        environments.c.id, environments.c.uid, environments.c.worker_uid
                    ).where(environments.c.experiment_run_phase_id == row.id)
                )
            },
            agents={
                uid: id_
                for id_, uid in connection.execute(
                    sa.select(agents.c.id, agents.c.uid).where(
                        agents.c.experiment_run_phase_id == row.id
                    )
                )
            },
        )
        self._phases[key] = found
        return found

    def _write_phase(self, context: _Context, record: PhaseStarted) -> None:
        connection = context.connection
        phases = schema.experiment_run_phases
        connection.execute(
            self._insert(phases)
            .values(
                uid=record.name,
                number=record.phase,
                mode=record.mode,
                configuration=record.config,
                experiment_run_instance_id=context.instance_id,
                workers=record.workers,
                episodes=record.episodes,
                started_at=to_datetime(record.walltime),
            )
            .on_conflict_do_nothing()
        )
        phase_id = connection.execute(
            sa.select(phases.c.id).where(
                phases.c.experiment_run_instance_id == context.instance_id,
                phases.c.number == record.phase,
            )
        ).scalar_one()
        workers = [str(worker) for worker in range(record.workers)]
        if record.environments:
            connection.execute(
                self._insert(schema.environments).on_conflict_do_nothing(),
                [
                    {
                        "uid": spec.uid,
                        "worker_uid": worker,
                        "type": spec.environment.name,
                        "parameters": spec.environment.params,
                        "experiment_run_phase_id": phase_id,
                    }
                    for spec in record.environments
                    for worker in workers
                ],
            )
        if record.agents:
            connection.execute(
                self._insert(schema.agents).on_conflict_do_nothing(),
                [
                    {
                        "uid": spec.name,
                        "name": spec.name,
                        "muscles": workers,
                        "configuration": msgspec.to_builtins(spec),
                        "experiment_run_phase_id": phase_id,
                    }
                    for spec in record.agents
                ],
            )
        self._phases.pop((context.instance_id, record.phase), None)

    def _write_episodes_started(self, context: _Context, records: list[EpisodeStarted]) -> None:
        if not records:
            return
        rows = [
            {
                "experiment_run_phase_id": context.phase(record).id,
                "worker_uid": str(record.worker),
                "episode": record.episode,
                "started_at": to_datetime(record.walltime),
            }
            for record in records
        ]
        context.connection.execute(
            self._insert(schema.experiment_run_episodes).on_conflict_do_nothing(), rows
        )

    def _write_episodes_ended(self, context: _Context, records: list[EpisodeEnded]) -> None:
        table = schema.experiment_run_episodes
        for record in records:
            statement = self._insert(table).values(
                experiment_run_phase_id=context.phase(record).id,
                worker_uid=str(record.worker),
                episode=record.episode,
                ended_at=to_datetime(record.walltime),
                steps=record.steps,
            )
            context.connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["experiment_run_phase_id", "worker_uid", "episode"],
                    set_={
                        "ended_at": statement.excluded.ended_at,
                        "steps": statement.excluded.steps,
                    },
                )
            )

    def _world_state_rows(
        self, context: _Context, records: list[WorldState]
    ) -> list[tuple[Any, ...]]:
        timestamp, json = self._timestamp, _json_encoder.encode
        rows = []
        phase: _Phase | None = None
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
        return rows

    def _muscle_action_rows(
        self, context: _Context, records: list[MuscleAction]
    ) -> list[tuple[Any, ...]]:
        timestamp, json = self._timestamp, _json_encoder.encode
        rows = []
        phase: _Phase | None = None
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
                    phase.mode,
                )
            )
        return rows

    # --- status ----------------------------------------------------------------------

    def _apply_status(self, connection: sa.Connection, event: StatusEvent) -> str:
        if isinstance(event, Scheduled):
            return self._schedule(connection, event)
        instances = schema.experiment_run_instances
        row = connection.execute(
            sa.select(instances.c.id, instances.c.status).where(
                instances.c.uid == event.instance_uid
            )
        ).first()
        if row is None:
            raise RequestRejected(
                f"status {_status_of(event)!r} for unknown run instance "
                f"{event.instance_uid!r}: no 'scheduled' event was recorded for it"
            )
        status = next_status(row.status, _status_of(event))
        if status is None:
            return str(row.status)
        values: dict[str, Any] = {"status": status}
        if isinstance(event, Running):
            values["started_at"] = to_datetime(event.time)
        else:
            values["ended_at"] = to_datetime(event.time)
        if isinstance(event, Failed | Cancelled):
            values["status_reason"] = event.reason
        connection.execute(
            sa.update(instances)
            .where(instances.c.id == row.id, instances.c.status == row.status)
            .values(**values)
        )
        if status in schema.TERMINAL_STATUSES:
            # Few records follow the end of a run: keep the caches to the live runs.
            self._instances.pop(event.instance_uid, None)
            for key in [key for key in self._phases if key[0] == row.id]:
                del self._phases[key]
        return status

    def _schedule(self, connection: sa.Connection, event: Scheduled) -> str:
        experiments, runs = schema.experiments, schema.experiment_runs
        connection.execute(
            self._insert(experiments).values(name=event.experiment_uid).on_conflict_do_nothing()
        )
        experiment_id = connection.execute(
            sa.select(experiments.c.id).where(experiments.c.name == event.experiment_uid)
        ).scalar_one()
        digest = hashlib.sha256(event.document.encode()).hexdigest() if event.document else None
        this_run = (runs.c.experiment_id == experiment_id) & (runs.c.uid == event.run_uid)
        existing = connection.execute(sa.select(runs.c.id, runs.c.hash).where(this_run)).first()
        if existing is not None and digest is not None and existing.hash not in (None, digest):
            # The run's document changed under the same uid: keep the old run, renamed.
            connection.execute(
                sa.update(runs)
                .where(runs.c.id == existing.id)
                .values(uid=f"{event.run_uid} [{existing.hash[:12]}]")
            )
            existing = None
        if existing is None:
            connection.execute(
                sa.insert(runs).values(
                    uid=event.run_uid,
                    hash=digest,
                    experiment_id=experiment_id,
                    document=event.document,
                    document_json=_parse_document(event.document),
                )
            )
        run_id = connection.execute(sa.select(runs.c.id).where(this_run)).scalar_one()
        instances = schema.experiment_run_instances
        connection.execute(
            self._insert(instances)
            .values(
                uid=event.instance_uid,
                created_at=to_datetime(event.time),
                user=event.user,
                status=schema.SCHEDULED,
                experiment_run_id=run_id,
            )
            .on_conflict_do_nothing()
        )
        status = connection.execute(
            sa.select(instances.c.status).where(instances.c.uid == event.instance_uid)
        ).scalar_one()
        return str(status)


class _Context:
    """One batch's view: its connection and instance, and messages naming its records."""

    def __init__(
        self, writer: StoreWriter, connection: sa.Connection, instance_id: int, uid: str
    ) -> None:
        self._writer = writer
        self.connection = connection
        self.instance_id = instance_id
        self.instance_uid = uid

    def phase(self, record: Record) -> _Phase:
        found = self._writer.phase(self.connection, self.instance_id, record.phase)
        if found is None:
            raise RequestRejected(
                f"{_describe(record)} belongs to phase {record.phase} of run instance "
                f"{self.instance_uid!r}, which has no phase_started record"
            )
        return found

    def unknown(self, record: Record, kind: str, name: str) -> str:
        return (
            f"{_describe(record)} names {kind} {name!r}, which phase {record.phase} of run "
            f"instance {self.instance_uid!r} does not have"
        )


_WRITE_ORDER: Sequence[type] = (
    PhaseStarted,
    EpisodeStarted,
    WorldState,
    MuscleAction,
    EpisodeEnded,
    PhaseEnded,
)


def _describe(record: Record) -> str:
    fields = ", ".join(
        f"{name} {getattr(record, name)}"
        for name in ("phase", "worker", "episode", "step")
        if hasattr(record, name)
    )
    return f"{type(record).__struct_config__.tag} ({fields})"


def _status_of(event: StatusEvent) -> str:
    return str(type(event).__struct_config__.tag)


def _parse_document(document: str | None) -> Any:
    """The experiment file as JSON-able data for `document_json`, or None."""
    if not document:
        return None
    try:
        return msgspec.to_builtins(yaml.safe_load(document), str_keys=True)
    except (yaml.YAMLError, TypeError):
        return None
