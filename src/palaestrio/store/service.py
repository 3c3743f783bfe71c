"""The store service: an MDP worker for service "store" that writes what it receives.

Each request is decoded and written in one transaction by a `StoreWriter` in a worker
thread (one at a time: a limiter of 1 over one connection), so database writes never
block the trio loop; the reply goes out only after the commit. Every failure becomes an
error reply naming the problem, and the service goes on serving the other runs.

Failures that may pass (a full disk, a read-only file system) are answered "retryable"
within a `WriteBudget`; past it, or at once when the SQLite file is no longer the one
opened, the store *fails*: `on_failure` gets the reason, and from then on every request
is refused for good with it (nothing it is sent is acknowledged any more).

`serve` registers its executor in the store before it serves, declares the runs of
executors that are gone lost (`ownership.reap_lost_runs`), renews the executor's lease
while it serves and marks the executor ended when it stops. It accepts records and
status events only for run instances its executor scheduled (see `writer`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import msgspec
import sqlalchemy as sa
import sqlalchemy.exc
import trio

from palaestrio.errors import single_error
from palaestrio.mdp.worker import serve_worker
from palaestrio.store import messages
from palaestrio.store.engine import create_database, describe, open_database
from palaestrio.store.errors import (
    LeaseLost,
    RequestNotOwned,
    RequestRejected,
    StoreError,
    StoreFailed,
)
from palaestrio.store.messages import SERVICE, Rejected, StoreReply
from palaestrio.store.ownership import (
    DEFAULT_LEASE_SECONDS,
    end_executor,
    new_executor_id,
    reap_lost_runs,
    register_executor,
    renew_lease,
)
from palaestrio.store.write_budget import WriteBudget
from palaestrio.store.writer import StoreWriter

log = logging.getLogger(__name__)

HURRIED_WRITE_SECONDS = 0.5
"""How long a write may take once the executor is stopping before the store fails."""
CLOSE_GRACE = 10.0
"""Seconds a cancelled service waits for the write in progress and the disconnect."""


class StoreService:
    """Turns request frames into committed rows and reply frames."""

    def __init__(
        self,
        writer: StoreWriter,
        budget: WriteBudget | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._writer = writer
        self._limiter = trio.CapacityLimiter(1)
        self.budget = budget or WriteBudget()
        self.failure: str | None = None
        """Why the store gave up for good, once it has."""
        self._on_failure = on_failure
        self._waits: set[trio.CancelScope] = set()

    async def handle(self, frames: list[bytes]) -> list[bytes]:
        """The MDP handler: never raises for a bad request or a database error.

        A write that has not returned within the budget's seconds (a hung file system,
        a lock never released) fails the store too; its thread is abandoned."""
        if self.failure is not None:
            return [messages.encode(Rejected(f"the store failed: {self.failure}"))]
        reply: bytes | None = None
        began = trio.current_time()
        with trio.CancelScope(deadline=self._deadline()) as wait:
            self._waits.add(wait)
            try:
                reply = await trio.to_thread.run_sync(
                    self._apply, frames, limiter=self._limiter, abandon_on_cancel=True
                )
            finally:
                self._waits.discard(wait)
        if reply is None:
            seconds = trio.current_time() - began
            reply = messages.encode(self._fail(f"a write has not returned for {seconds:.1f} s"))
        self._report_failure()
        return [reply]

    def _report_failure(self) -> None:
        if self.failure is not None and self._on_failure is not None:
            on_failure, self._on_failure = self._on_failure, None
            on_failure(self.failure)

    def hurry(self) -> None:
        """The executor is stopping: no write is retried, none may hang for long."""
        self.budget.hurry()
        for wait in self._waits:
            wait.deadline = min(wait.deadline, self._deadline())

    def _allowed(self) -> float:
        return HURRIED_WRITE_SECONDS if self.budget.hurried else self.budget.seconds

    def _deadline(self) -> float:
        return trio.current_time() + self._allowed()

    def _fail(self, reason: str) -> Rejected:
        if self.failure is None:
            self.failure = reason
            log.error("the store failed, it writes nothing more: %s", reason)
        return Rejected(f"the store failed: {self.failure}")

    async def aclose(self) -> None:
        """Waits for the write in progress, marks the executor ended (its runs are over or
        lost now), then closes the connection."""
        if self.failure is None:
            await trio.to_thread.run_sync(self._close, limiter=self._limiter)

    def _close(self) -> None:
        writer = self._writer
        if self.failure is not None:
            return  # a failed store touches its database no more (a write may hang)
        try:
            end_executor(writer.engine, writer.executor_id)
        except sqlalchemy.exc.SQLAlchemyError as error:
            log.warning("could not mark executor %s ended: %s", writer.executor_id, error)
        finally:
            writer.close()

    def _apply(self, frames: list[bytes]) -> bytes:
        return messages.encode(self.apply_frames(frames))

    def apply_frames(self, frames: list[bytes]) -> StoreReply:
        """Decodes and applies one request (blocking; run in a worker thread)."""
        if len(frames) != 1:
            return Rejected(f"a store request is one frame, this one has {len(frames)}")
        try:
            request = messages.decode_request(frames[0])
        except msgspec.DecodeError as error:
            return Rejected(f"malformed store request: {error}")
        if self.failure is not None:
            return Rejected(f"the store failed: {self.failure}")
        where = _describe(request)
        try:
            acknowledged = self._writer.apply(request)
        except StoreFailed as error:
            return self._fail(str(error))
        except RequestNotOwned as error:
            log.warning("refused %s: %s", where, error)
            return Rejected(f"{where} refused: {error}", not_owned=True)
        except RequestRejected as error:
            log.warning("rejected %s: %s", where, error)
            return Rejected(f"{where} rejected: {error}")
        except sqlalchemy.exc.DBAPIError as error:
            retryable = isinstance(error, sqlalchemy.exc.OperationalError | sa.exc.InterfaceError)
            reason = str(error.orig).strip() if error.orig else str(error)
            log.warning("could not write %s (retryable: %s): %s", where, retryable, reason)
            given_up = self.budget.failed() if retryable else None
            if given_up is not None:
                database = describe(self._writer.engine.url)
                return self._fail(f"store {database} refused writes ({given_up}): {reason}")
            return Rejected(f"{where} not written: {reason}", retryable=retryable)
        except Exception as error:
            log.exception("could not write %s", where)
            return Rejected(f"{where} not written: {type(error).__name__}: {error}")
        self.budget.succeeded()
        return acknowledged


def _describe(request: messages.StoreRequest) -> str:
    if isinstance(request, messages.RecordBatch):
        return (
            f"batch {request.sequence} ({len(request.records)} records) of run instance "
            f"{request.instance_uid!r}"
        )
    if isinstance(request, messages.Summarize):
        return f"the summaries of {len(request.instance_uids)} run instance(s)"
    tag = type(request).__struct_config__.tag
    return f"status {tag!r} of run instance {request.instance_uid!r}"


async def serve(
    store_uri: str,
    broker_endpoint: str,
    *,
    create: bool = False,
    executor_id: str | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    heartbeat_interval: float = 2.5,
    heartbeat_liveness: int = 3,
    budget: WriteBudget | None = None,
    on_failure: Callable[[str], None] | None = None,
    executor_pid: int | None = None,
    task_status: trio.TaskStatus[StoreService] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serves the store at `broker_endpoint` for executor `executor_id` until cancelled.

    The database is opened (and with `create=True` first created) and the executor
    registered before anything else: a bad URI, an unreachable server, a missing,
    foreign or read-only database raises `StoreError` before `task_status.started()`.
    Then the runs of executors that are gone are marked lost (and logged). Started
    (with the `StoreService`) means the broker has been sent READY. `executor_id=None`
    makes up an id; `executor_pid`: the executor's process (default: this one).

    The lease (`lease_seconds`) is renewed every third of it; when renewals fail for
    longer than the lease, `serve` raises `LeaseLost`.
    """
    if create:
        await trio.to_thread.run_sync(create_database, store_uri)
    engine = await trio.to_thread.run_sync(partial(open_database, store_uri, immediate=True))
    executor_id = executor_id or new_executor_id()
    try:
        await trio.to_thread.run_sync(
            partial(register_executor, engine, executor_id, lease_seconds, pid=executor_pid)
        )
    except BaseException:
        engine.dispose()
        raise
    service = StoreService(StoreWriter(engine, executor_id), budget, on_failure)
    try:
        await _reap(engine)
        renew = partial(renew_lease, engine, executor_id, lease_seconds, pid=executor_pid)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_lease, partial(_unless_failed, service, renew), lease_seconds)
            await nursery.start(
                partial(
                    serve_worker,
                    broker_endpoint,
                    SERVICE,
                    service.handle,
                    heartbeat_interval=heartbeat_interval,
                    heartbeat_liveness=heartbeat_liveness,
                )
            )
            task_status.started(service)
    except BaseExceptionGroup as group:
        error = single_error(group)
        raise error from error.__cause__
    finally:
        with trio.move_on_after(CLOSE_GRACE, shield=True):
            await service.aclose()


def _unless_failed(service: StoreService, renew: Callable[[], None]) -> None:
    if service.failure is None:  # a new connection would make a deleted file anew
        renew()


async def keep_lease(renew: Callable[[], None], lease_seconds: float) -> None:
    """Calls `renew` (in a thread) every third of the lease, forever.

    A failed renewal is logged and tried again; raises `LeaseLost` once the last
    successful renewal is older than the lease (others may judge the executor gone).
    """
    renewed = trio.current_time()
    while True:
        await trio.sleep(lease_seconds / 3)
        attempt = trio.current_time()
        try:
            await trio.to_thread.run_sync(renew)
        except (sqlalchemy.exc.SQLAlchemyError, StoreError) as error:
            if attempt - renewed >= lease_seconds:
                raise LeaseLost(
                    f"the store could not renew the executor's lease for {attempt - renewed:.1f}"
                    f" s (the lease lasts {lease_seconds:g} s): {error}"
                ) from error
            log.warning("could not renew the executor's lease (trying again): %s", error)
        else:
            renewed = attempt


async def _reap(engine: sa.Engine) -> None:
    try:
        lost = await trio.to_thread.run_sync(reap_lost_runs, engine)
    except StoreError as error:
        log.warning("could not look for lost runs: %s", error)
        return
    for run in lost:
        log.warning(
            "run instance %r (run %r of experiment %r) was %s, but %s: marked error, %s",
            run.instance_uid,
            run.run_uid,
            run.experiment_uid,
            run.status.value,
            run.why,
            run.reason,
        )


__all__ = ["SERVICE", "StoreError", "StoreService", "keep_lease", "serve"]
