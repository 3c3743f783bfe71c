"""Which run instance a user means: the one lookup every results reader starts with.

Resolved as `palaestrio.store.queries.run_details` does (instance uid, else the latest
instance of a run uid, else a unique short instance uid), but without its totals: the
web page asks for a run's series every second.
"""

from __future__ import annotations

import datetime

import msgspec
import sqlalchemy as sa

from palaestrio.status import RunStatus
from palaestrio.store import schema
from palaestrio.store.queries import SHORT_UID_LENGTH, AmbiguousRun, UnknownRun, utc

_instances = schema.experiment_run_instances
_runs = schema.experiment_runs
_experiments = schema.experiments
_phases = schema.experiment_run_phases


class RunInstance(msgspec.Struct, frozen=True):
    id: int
    """`experiment_run_instances.id`"""
    instance_uid: str
    run_uid: str
    experiment_uid: str
    status: RunStatus
    started: datetime.datetime | None
    ended: datetime.datetime | None


class Phase(msgspec.Struct, frozen=True):
    id: int
    """`experiment_run_phases.id`"""
    number: int
    name: str
    mode: str | None


def find_instance(connection: sa.Connection, uid: str) -> RunInstance:
    """The run instance `uid` names. Raises `UnknownRun` or `AmbiguousRun` (as
    `run_details` does)."""
    query = (
        sa.select(
            _instances.c.id,
            _instances.c.uid,
            _runs.c.uid.label("run_uid"),
            _experiments.c.name,
            _instances.c.status,
            _instances.c.started_at,
            _instances.c.ended_at,
        )
        .select_from(
            _instances.join(_runs, _runs.c.id == _instances.c.experiment_run_id).join(
                _experiments, _experiments.c.id == _runs.c.experiment_id
            )
        )
        .order_by(_instances.c.created_at, _instances.c.id)
    )
    rows = connection.execute(query.where(_instances.c.uid == uid)).all()
    if not rows:
        rows = connection.execute(query.where(_runs.c.uid == uid)).all()
    if not rows and len(uid) >= SHORT_UID_LENGTH and all(c in "0123456789abcdef" for c in uid):
        rows = connection.execute(query.where(_instances.c.uid.like(f"{uid}%"))).all()
        if len(rows) > 1:
            candidates = "; ".join(f"{row.uid} ({row.run_uid}, {row.status})" for row in rows)
            raise AmbiguousRun(f"short uid {uid!r} is ambiguous; candidates: {candidates}")
    if not rows:
        raise UnknownRun(f"the store has no run instance and no run {uid!r}")
    row = rows[-1]
    return RunInstance(
        id=row.id,
        instance_uid=row.uid,
        run_uid=row.run_uid,
        experiment_uid=row.name,
        status=RunStatus(row.status),
        started=utc(row.started_at),
        ended=utc(row.ended_at),
    )


def phases_of(connection: sa.Connection, instance: RunInstance) -> list[Phase]:
    rows = connection.execute(
        sa.select(_phases.c.id, _phases.c.number, _phases.c.uid, _phases.c.mode)
        .where(_phases.c.experiment_run_instance_id == instance.id)
        .order_by(_phases.c.number)
    )
    return [Phase(id=row.id, number=row.number, name=row.uid, mode=row.mode) for row in rows]
