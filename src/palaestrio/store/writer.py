"""Applies store requests to the database: one batch or event per transaction, and only
for run instances this store's executor owns.

The writer is synchronous and owns one connection; the service calls it from a worker
thread, one request at a time. Records go through `RecordWriter` (steps through
`StepRows`, the hot path), status events through `StatusWriter`.

Ownership: a `scheduled` event makes this writer's executor the owner of the instance,
in the database (`experiment_run_instances.executor_id`) and in memory. Records and
other status events for an instance it does not own (unknown, or another executor's)
raise `RequestNotOwned`: an orphaned RunGovernor of a dead executor cannot write into
a run the next executor's store never scheduled.
"""

from __future__ import annotations

import sqlalchemy as sa

from palaestrio.status import RunStatus
from palaestrio.store import schema
from palaestrio.store.errors import RequestNotOwned, StoreFailed
from palaestrio.store.file_identity import FileIdentity
from palaestrio.store.messages import (
    Acknowledged,
    RecordBatch,
    Scheduled,
    StoreRequest,
    Summarize,
)
from palaestrio.store.queries import summaries_of
from palaestrio.store.record_writer import RecordWriter
from palaestrio.store.status_writer import StatusWriter, status_of
from palaestrio.store.step_rows import TimestampText, to_datetime

__all__ = ["StoreWriter", "TimestampText", "to_datetime"]

_instances = schema.experiment_run_instances


class StoreWriter:
    """Writes requests through one connection of `engine` (from one thread at a time)
    for executor `executor_id`, which must be registered (`ownership.register_executor`).
    """

    def __init__(self, engine: sa.Engine, executor_id: str) -> None:
        self.executor_id = executor_id
        self._engine = engine
        self._connection: sa.Connection | None = None
        self._records = RecordWriter(engine.dialect)
        self._statuses = StatusWriter(engine.dialect, executor_id)
        self._owned: dict[str, int] = {}
        """Live run instances this executor owns: uid -> experiment_run_instances.id."""
        self._file = FileIdentity.of(engine)

    def apply(self, request: StoreRequest) -> Acknowledged:
        """Writes `request` in one transaction and returns the acknowledgement.

        Raises `RequestNotOwned` for a run instance this executor does not own,
        `RequestRejected` for another request that can never succeed as sent, and
        SQLAlchemy errors for what the database refused; nothing is written then.
        Raises `StoreFailed` when a SQLite file is no longer the one opened (deleted or
        replaced): what was committed there is lost, so it is never acknowledged.
        """
        connection = self._connect()
        try:
            with connection.begin():
                acknowledged = self._apply(connection, request)
            problem = self._file.problem() if self._file is not None else None
            if problem is not None:
                raise StoreFailed(f"{problem} while palaestrio was writing to it")
            return acknowledged
        except BaseException:
            # Ids cached during the failed transaction may not exist.
            self._owned.clear()
            self._records.forget()
            if connection.invalidated:
                self._disconnect()
            raise

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def close(self) -> None:
        self._disconnect()
        self._engine.dispose()
        if self._file is not None:
            self._file.close()  # only now: closing it drops SQLite's locks

    def _apply(self, connection: sa.Connection, request: StoreRequest) -> Acknowledged:
        if isinstance(request, Summarize):  # reads only: any executor's runs
            return Acknowledged(runs=summaries_of(connection, request.instance_uids))
        uid = request.instance_uid
        if isinstance(request, RecordBatch):
            instance_id = self._owned.get(uid)
            if instance_id is None:
                instance_id, _ = self._owned_instance(connection, uid, "records")
                self._owned[uid] = instance_id
            self._records.write(connection, instance_id, request)
            return Acknowledged(written=len(request.records))
        if isinstance(request, Scheduled):
            instance_id, status = self._statuses.schedule(connection, request)
            self._owned[uid] = instance_id
            return Acknowledged(status=status)
        what = f"status {status_of(request).value!r}"
        instance_id, current = self._owned_instance(connection, uid, what)
        status = self._statuses.apply(connection, instance_id, current, request)
        if status.is_terminal:
            # Few records follow the end of a run: keep the caches to the live runs.
            self._owned.pop(uid, None)
            self._records.forget(instance_id)
        return Acknowledged(status=status)

    def _owned_instance(
        self, connection: sa.Connection, uid: str, what: str
    ) -> tuple[int, RunStatus]:
        """Instance `uid` (id and status) if this executor owns it; else `RequestNotOwned`."""
        row = connection.execute(
            sa.select(_instances.c.id, _instances.c.status, _instances.c.executor_id).where(
                _instances.c.uid == uid
            )
        ).first()
        if row is None:
            raise RequestNotOwned(
                f"{what} for unknown run instance {uid!r}: no 'scheduled' event was recorded for it"
            )
        if row.executor_id != self.executor_id:
            owner = f"executor {row.executor_id}" if row.executor_id else "no executor"
            raise RequestNotOwned(
                f"{what} for run instance {uid!r}, which {owner} owns, not this store's "
                f"executor {self.executor_id}"
            )
        return int(row.id), RunStatus(row.status)

    def _connect(self) -> sa.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self._engine.connect()
        return self._connection

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
