"""Writes one batch of a run's records: phases, episodes, and (through `StepRows`) steps.

Every insert is keyed by the record's natural key and ignores conflicts, so writing the
same batch twice leaves the same rows. Phase ids are cached per (instance, phase) while
a run lives; the caller clears them when a transaction fails or the run ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import sqlalchemy as sa

from palaestrio.records import (
    BrainStored,
    EpisodeEnded,
    EpisodeStarted,
    MuscleAction,
    PhaseEnded,
    PhaseStarted,
    WorldState,
)
from palaestrio.store import schema
from palaestrio.store.engine import insert_for
from palaestrio.store.errors import RequestRejected
from palaestrio.store.messages import RecordBatch
from palaestrio.store.step_rows import BatchContext, PhaseIds, StepRows, to_datetime

_WRITE_ORDER: Sequence[type] = (
    PhaseStarted,
    EpisodeStarted,
    WorldState,
    MuscleAction,
    EpisodeEnded,
    BrainStored,
    PhaseEnded,
)


class RecordWriter:
    """Writes record batches for one dialect; keeps the phase-id cache."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self._insert = insert_for(dialect)
        self._steps = StepRows(dialect)
        self._phases: dict[tuple[int, int], PhaseIds] = {}

    def write(self, connection: sa.Connection, instance_id: int, batch: RecordBatch) -> None:
        """Writes `batch` (of the owned instance `instance_id`) in the open transaction.

        Raises `RequestRejected` for records that name no known phase, environment or
        agent of the run.
        """
        groups: dict[type, list[Any]] = {kind: [] for kind in _WRITE_ORDER}
        for record in batch.records:
            groups[type(record)].append(record)
        context = BatchContext(connection, instance_id, batch.instance_uid, self.phase)
        for phase_started in groups[PhaseStarted]:
            self._write_phase(context, phase_started)
        self._write_episodes_started(context, groups[EpisodeStarted])
        if groups[WorldState]:
            self._steps.write_world_states(context, groups[WorldState])
        if groups[MuscleAction]:
            self._steps.write_muscle_actions(context, groups[MuscleAction])
        self._write_episodes_ended(context, groups[EpisodeEnded])
        for brain_stored in groups[BrainStored]:
            self._write_brain_state(context, brain_stored)
        for phase_ended in groups[PhaseEnded]:
            connection.execute(
                sa.update(schema.experiment_run_phases)
                .where(schema.experiment_run_phases.c.id == context.phase(phase_ended).id)
                .values(ended_at=to_datetime(phase_ended.walltime))
            )

    def forget(self, instance_id: int | None = None) -> None:
        """Drops cached phase ids: of one instance, or (None) all of them."""
        if instance_id is None:
            self._phases.clear()
            return
        for key in [key for key in self._phases if key[0] == instance_id]:
            del self._phases[key]

    def phase(self, connection: sa.Connection, instance_id: int, number: int) -> PhaseIds | None:
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
        found = PhaseIds(
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

    def _write_phase(self, context: BatchContext, record: PhaseStarted) -> None:
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
        self._write_components(connection, phase_id, record)
        self._phases.pop((context.instance_id, record.phase), None)

    def _write_components(
        self, connection: sa.Connection, phase_id: int, record: PhaseStarted
    ) -> None:
        """The phase's environments (one row per worker) and agents."""
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

    def _write_episodes_started(self, context: BatchContext, records: list[EpisodeStarted]) -> None:
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

    def _write_brain_state(self, context: BatchContext, record: BrainStored) -> None:
        """A `brain_states` row, unless a resent batch wrote it already."""
        agent_id = context.phase(record).agents.get(record.agent)
        if agent_id is None:
            raise RequestRejected(context.unknown(record, "agent", record.agent))
        table = schema.brain_states
        values = {
            "walltime": to_datetime(record.walltime),
            "tag": record.tag,
            "path": record.path,
            "phase": record.phase,
            "agent_id": agent_id,
        }
        exists = sa.select(table.c.id).where(
            *(table.c[key] == value if value is not None else table.c[key].is_(None)
              for key, value in values.items())
        )  # fmt: skip
        if context.connection.execute(exists).first() is None:
            context.connection.execute(sa.insert(table).values(values))

    def _write_episodes_ended(self, context: BatchContext, records: list[EpisodeEnded]) -> None:
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
