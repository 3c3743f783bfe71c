"""Writes a run instance's status events: `scheduled` creates it, owned by this store's
executor; the others move it along the lifecycle (`palaestrio.store.lifecycle`)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import sqlalchemy as sa
import yaml

from palaestrio.status import RunStatus
from palaestrio.store import schema
from palaestrio.store.engine import insert_for
from palaestrio.store.errors import RequestNotOwned
from palaestrio.store.lifecycle import next_status
from palaestrio.store.liveness import this_machine, why_gone
from palaestrio.store.messages import Cancelled, Failed, Running, Scheduled, StatusEvent
from palaestrio.store.ownership import database_now, load_owner
from palaestrio.store.step_rows import to_datetime

log = logging.getLogger(__name__)

_instances = schema.experiment_run_instances


def status_of(event: StatusEvent) -> RunStatus:
    return RunStatus(str(type(event).__struct_config__.tag))


class StatusWriter:
    """Applies status events for the run instances of executor `executor_id`."""

    def __init__(self, dialect: sa.Dialect, executor_id: str) -> None:
        self._insert = insert_for(dialect)
        self.executor_id = executor_id

    def schedule(self, connection: sa.Connection, event: Scheduled) -> tuple[int, RunStatus]:
        """Creates the instance (with its experiment and run) owned by this executor.

        A resent event changes nothing. Raises `RequestNotOwned` for an instance another
        executor owns that is alive (one that is gone hands the instance over).
        Returns the instance's id and status.
        """
        run_id = self._run(connection, event)
        connection.execute(
            self._insert(_instances)
            .values(
                uid=event.instance_uid,
                created_at=to_datetime(event.time),
                user=event.user,
                status=RunStatus.SCHEDULED.value,
                experiment_run_id=run_id,
                executor_id=self.executor_id,
                attempt=event.attempt,
                retry_of=event.retry_of,
            )
            .on_conflict_do_nothing()
        )
        row = connection.execute(
            sa.select(_instances.c.id, _instances.c.status, _instances.c.executor_id).where(
                _instances.c.uid == event.instance_uid
            )
        ).one()
        if row.executor_id != self.executor_id:
            self._take_over(connection, event.instance_uid, row.executor_id)
        return row.id, RunStatus(row.status)

    def apply(
        self,
        connection: sa.Connection,
        instance_id: int,
        current: RunStatus,
        event: StatusEvent,
    ) -> RunStatus:
        """Applies a non-`scheduled` event to instance `instance_id` (owned by this
        executor, now in `current`); returns the status afterwards."""
        status = next_status(current, status_of(event))
        if status is None:
            return current
        values: dict[str, Any] = {"status": status.value}
        if isinstance(event, Running):
            values["started_at"] = to_datetime(event.time)
        else:
            values["ended_at"] = to_datetime(event.time)
        if isinstance(event, Failed | Cancelled):
            values["status_reason"] = event.reason
        connection.execute(
            sa.update(_instances)
            .where(_instances.c.id == instance_id, _instances.c.status == current.value)
            .values(**values)
        )
        return status

    def _run(self, connection: sa.Connection, event: Scheduled) -> int:
        """The id of the event's run (and experiment), made if new."""
        experiments, runs = schema.experiments, schema.experiment_runs
        connection.execute(
            self._insert(experiments).values(name=event.experiment_uid).on_conflict_do_nothing()
        )
        experiment_id = connection.execute(
            sa.select(experiments.c.id).where(experiments.c.name == event.experiment_uid)
        ).scalar_one()
        digest = schema.document_hash(event.document) if event.document else None
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
        return int(connection.execute(sa.select(runs.c.id).where(this_run)).scalar_one())

    def _take_over(self, connection: sa.Connection, uid: str, owner_id: str | None) -> None:
        """Makes this executor the owner of instance `uid` if its owner is gone."""
        owner = None if owner_id is None else load_owner(connection, owner_id)
        if owner is None:
            raise RequestNotOwned(
                f"run instance {uid!r} was scheduled by a palaestrio without run ownership"
            )
        why = why_gone(owner, this_machine(), database_now(connection))
        if why is None:
            raise RequestNotOwned(
                f"run instance {uid!r} is owned by executor {owner.executor_id} "
                f"(pid {owner.pid} on {owner.host}), which is alive"
            )
        connection.execute(
            sa.update(_instances)
            .where(_instances.c.uid == uid, _instances.c.executor_id == owner_id)
            .values(executor_id=self.executor_id)
        )
        log.info("executor %s takes over run instance %r: %s", self.executor_id, uid, why)


def _parse_document(document: str | None) -> Any:
    """The experiment file as JSON-able data for `document_json`, or None."""
    if not document:
        return None
    try:
        return msgspec.to_builtins(yaml.safe_load(document), str_keys=True)
    except (yaml.YAMLError, TypeError):
        return None
