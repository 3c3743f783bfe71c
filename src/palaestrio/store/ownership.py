"""Which executor owns each run, its lease, and runs whose executor is gone ("lost").

Each store service registers its executor in `palaestrio_executors` (`register_executor`)
and renews the row's lease (`renew_lease`) while it serves; a run instance is owned by
the executor whose store recorded its `scheduled` event (`executor_id`). When an
executor dies without ending its runs (SIGKILL, power loss), `reap_lost_runs` marks
them `error` with the reason "executor lost (N steps stored)", so no run stays
`running` forever. Who counts as gone is `palaestrio.store.liveness.why_gone`.

Reaping is safe on a store this process cannot write: it writes nothing then.
"""

from __future__ import annotations

import datetime
import logging
import os
import uuid

import msgspec
import sqlalchemy as sa
import sqlalchemy.exc

from palaestrio.status import EXECUTOR_LOST, RunStatus
from palaestrio.store import schema
from palaestrio.store.engine import describe, insert_for, refused_write
from palaestrio.store.errors import StoreError
from palaestrio.store.liveness import Machine, Owner, process_start, this_machine, why_gone
from palaestrio.store.queries import steps_stored, utc

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 30.0
"""How long an executor's registration holds without renewal (renewed every third)."""

_executors = schema.palaestrio_executors
_instances = schema.experiment_run_instances
_LIVE_STATUSES = [status.value for status in schema.STATUSES if not status.is_terminal]


class LostRun(msgspec.Struct, frozen=True):
    """A run `reap_lost_runs` marked `error` because its executor is gone."""

    instance_uid: str
    run_uid: str
    experiment_uid: str
    status: RunStatus
    """What the run was before: `scheduled` or `running`."""
    steps: int
    """Steps stored when it was declared lost."""
    reason: str
    """The stored `status_reason`: "executor lost (N steps stored)"."""
    owner: Owner
    why: str
    """Why the owner counts as gone (its process is gone, its lease expired, ...)."""


def new_executor_id() -> str:
    return uuid.uuid4().hex


def database_now(connection: sa.Connection) -> datetime.datetime:
    """The time by which leases are given and judged: PostgreSQL's clock (shared by every
    host that uses the database), or for SQLite, a local file, this host's."""
    if connection.dialect.name == "postgresql":
        now = connection.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
        return utc(now) or datetime.datetime.now(datetime.UTC)
    return datetime.datetime.now(datetime.UTC)


def register_executor(
    engine: sa.Engine, executor_id: str, lease_seconds: float, *, pid: int | None = None
) -> Owner:
    """Records this process (or process `pid` on this machine: the executor, when the
    store is a process of its own) as executor `executor_id`, with a lease of
    `lease_seconds`.

    Registering an id again (a restarted store service of the same executor) replaces
    the row: the runs it owns stay owned. Raises `StoreError` if the store refuses, or
    if another live process holds the id (two executors must not share their runs).
    """
    here, pid = this_machine(), pid or os.getpid()
    try:
        with engine.begin() as connection:
            now = database_now(connection)
            _check_unused(connection, executor_id, here, pid, now)
            owner = Owner(
                executor_id=executor_id,
                host=here.host,
                boot_id=here.boot_id,
                pid_namespace=here.pid_namespace,
                pid=pid,
                pid_started=process_start(pid),
                started_at=now,
                lease_expires_at=now + datetime.timedelta(seconds=lease_seconds),
                ended_at=None,
            )
            values = msgspec.structs.asdict(owner)
            del values["executor_id"]
            statement = insert_for(connection.dialect)(_executors).values(id=executor_id, **values)
            connection.execute(statement.on_conflict_do_update(index_elements=["id"], set_=values))
    except sqlalchemy.exc.DBAPIError as error:
        if refused_write(error):
            # What a user can act on first: which store, and that it is permissions.
            raise StoreError(
                f"store {describe(engine.url)} is read-only here: permission denied "
                f"({_why(error)}); no run can be stored in it"
            ) from error
        raise StoreError(
            f"cannot register executor {executor_id} in the store: {_why(error)}"
        ) from error
    return owner


def _check_unused(
    connection: sa.Connection, executor_id: str, here: Machine, pid: int, now: datetime.datetime
) -> None:
    holder = load_owner(connection, executor_id)
    if holder is None or (holder.host, holder.boot_id, holder.pid) == (
        here.host,
        here.boot_id,
        pid,
    ):
        return
    if why_gone(holder, here, now) is None:
        raise StoreError(
            f"executor id {executor_id} is in use by a live executor (pid {holder.pid} on "
            f"{holder.host}): give each executor an id of its own"
        )


def renew_lease(
    engine: sa.Engine, executor_id: str, lease_seconds: float, *, pid: int | None = None
) -> None:
    """Extends the lease of `executor_id` (registering it again if its row is gone).

    Raises SQLAlchemy's errors: the caller decides how long it can live without.
    """
    with engine.begin() as connection:
        now = database_now(connection)
        renewed = connection.execute(
            sa.update(_executors)
            .where(_executors.c.id == executor_id, _executors.c.ended_at.is_(None))
            .values(lease_expires_at=now + datetime.timedelta(seconds=lease_seconds))
        )
    if renewed.rowcount == 0:
        log.warning("executor %s was not registered in the store; registering it", executor_id)
        register_executor(engine, executor_id, lease_seconds, pid=pid)


def end_executor(engine: sa.Engine, executor_id: str) -> None:
    """Marks executor `executor_id` ended: its runs are lost from now on, if any are left."""
    with engine.begin() as connection:
        now = database_now(connection)
        connection.execute(
            sa.update(_executors)
            .where(_executors.c.id == executor_id)
            .values(ended_at=now, lease_expires_at=now)
        )


def load_owner(connection: sa.Connection, executor_id: str) -> Owner | None:
    row = connection.execute(sa.select(_executors).where(_executors.c.id == executor_id)).first()
    return None if row is None else _owner(row)


def reap_lost_runs(engine: sa.Engine) -> list[LostRun]:
    """Marks every `scheduled` or `running` run whose executor is gone as `error`.

    Runs without an owner (scheduled by a palaestrio before ownership) are left alone,
    and so is every run whose owner is alive. On a store this process cannot write, it
    writes nothing and returns []. Returns the runs it marked; raises `StoreError` when
    the database fails otherwise.
    """
    lost: list[LostRun] = []
    try:
        with engine.connect() as connection:
            lost = _find_lost(connection, this_machine())
        if not lost:
            return []
        with engine.begin() as connection:
            now = database_now(connection)
            return [run for run in lost if _mark_lost(connection, run, now)]
    except sqlalchemy.exc.DBAPIError as error:
        if refused_write(error):
            log.info("store is read-only: %d lost runs left as they are", len(lost))
            return []
        raise StoreError(f"cannot mark lost runs: {_why(error)}") from error


def _find_lost(connection: sa.Connection, here: Machine) -> list[LostRun]:
    runs, experiments = schema.experiment_runs, schema.experiments
    rows = connection.execute(
        sa.select(
            _instances.c.id.label("instance_id"),
            _instances.c.uid.label("instance_uid"),
            _instances.c.status.label("run_status"),
            runs.c.uid.label("run_uid"),
            experiments.c.name.label("experiment_uid"),
            _executors,
        )
        .select_from(
            _instances.join(_executors, _executors.c.id == _instances.c.executor_id)
            .join(runs, runs.c.id == _instances.c.experiment_run_id)
            .join(experiments, experiments.c.id == runs.c.experiment_id)
        )
        .where(_instances.c.status.in_(_LIVE_STATUSES))
        .order_by(_instances.c.id)
    ).all()
    now = database_now(connection)
    lost = []
    for row in rows:
        owner = _owner(row)
        why = why_gone(owner, here, now)
        if why is None:
            continue
        steps = steps_stored(connection, row.instance_id)
        lost.append(
            LostRun(
                instance_uid=row.instance_uid,
                run_uid=row.run_uid,
                experiment_uid=row.experiment_uid,
                status=RunStatus(row.run_status),
                steps=steps,
                reason=f"{EXECUTOR_LOST} ({steps} step{'' if steps == 1 else 's'} stored)",
                owner=owner,
                why=why,
            )
        )
    return lost


def _mark_lost(connection: sa.Connection, run: LostRun, now: datetime.datetime) -> bool:
    """Marks `run` lost unless something changed since it was judged: its status, or its
    owner's registration (a restarted store of the same executor, a renewed lease)."""
    owner = run.owner
    unchanged_owner = sa.exists().where(
        _executors.c.id == owner.executor_id,
        _executors.c.pid == owner.pid,
        _executors.c.lease_expires_at == owner.lease_expires_at,
    )
    marked = connection.execute(
        sa.update(_instances)
        .where(
            _instances.c.uid == run.instance_uid,
            _instances.c.status == run.status.value,
            _instances.c.executor_id == owner.executor_id,
            unchanged_owner,
        )
        .values(status=RunStatus.ERROR.value, status_reason=run.reason, ended_at=now)
    )
    return bool(marked.rowcount)


def _owner(row: sa.Row[tuple[object, ...]]) -> Owner:
    m = row._mapping
    started_at, lease = utc(m["started_at"]), utc(m["lease_expires_at"])
    assert started_at is not None and lease is not None  # NOT NULL columns
    return Owner(
        executor_id=m["id"],
        host=m["host"],
        boot_id=m["boot_id"],
        pid_namespace=m["pid_namespace"],
        pid=m["pid"],
        pid_started=m["pid_started"],
        started_at=started_at,
        lease_expires_at=lease,
        ended_at=utc(m["ended_at"]),
    )


def _why(error: sqlalchemy.exc.DBAPIError) -> str:
    return str(error.orig).strip() if error.orig else str(error)
