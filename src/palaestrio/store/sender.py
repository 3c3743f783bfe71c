"""The sending side of the store: a record sink for the RunGovernor, and status events.

`open_store_sink` runs a `StoreSink` (a `palaestrio.records.RecordSink`) with a sender
task. Records are batched adaptively: a batch goes out when it is full (`max_batch`) or
`linger` seconds after its first record, so a light stream reaches the database within a
second and a heavy one travels in large batches. One batch is in flight at a time, which
keeps the batches of a run in order. A batch is kept until the store acknowledges its
commit; without a reply within `retry_after` seconds (the broker or the store restarted)
the same batch is sent again, and the store's natural keys make the resend harmless.
`emit` waits while `max_pending` records are unacknowledged (back-pressure).

`send_status` sends one status event with the same resend rule; `StoreSink.status`
first flushes the sink, so a run's `finished` follows its last record.

A store only takes requests for the run instances its own executor scheduled; for any
other it answers "not owned", and the sender raises `RunNotOwned` (from `emit`, `flush`
and the sink's block as well): a RunGovernor whose executor is gone stops there.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import msgspec
import trio

from palaestrio.errors import single_error
from palaestrio.records import Record
from palaestrio.status import RunStatus
from palaestrio.store import messages
from palaestrio.store.errors import RunNotOwned, StoreError, StoreRejected
from palaestrio.store.messages import (
    SERVICE,
    Acknowledged,
    RecordBatch,
    StatusEvent,
    StoreRequest,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 2048
DEFAULT_LINGER = 0.2
DEFAULT_MAX_PENDING = 2 * DEFAULT_MAX_BATCH
DEFAULT_RETRY_AFTER = 5.0
DEFAULT_CLOSE_GRACE = 10.0
MAX_RETRY_PAUSE = 0.5
"""The longest pause before a retryable write is sent again: the store decides when to
give up (its write budget), and a stopping executor must hear that soon."""
YIELD_INTERVAL = 0.01
"""`emit` lets the sender task run at least this often (seconds), not on every call:
a trio checkpoint costs more than storing a record."""


class Requester(Protocol):
    """What the sender needs of an MDP client (`palaestrio.mdp.client.Client`)."""

    async def request(self, service: str | bytes, *frames: bytes) -> list[bytes]: ...


async def deliver(
    client: Requester, message: StoreRequest, *, retry_after: float = DEFAULT_RETRY_AFTER
) -> Acknowledged:
    """Sends `message` to the store until it is acknowledged.

    Resends after `retry_after` seconds without a reply and, with a growing pause, after
    a retryable error reply. Raises `RunNotOwned` when the store does not own the run
    instance and `StoreRejected` for any other error reply.
    """
    frame = messages.encode(message)
    pause = 0.05
    while True:
        frames: list[bytes] | None = None
        with trio.move_on_after(retry_after):
            frames = await client.request(SERVICE, frame)
        if frames is None:
            log.info("no reply from the store within %.1f s; sending again", retry_after)
            continue
        if len(frames) != 1:
            raise StoreError(f"the store replied with {len(frames)} frames instead of one")
        try:
            reply = messages.decode_reply(frames[0])
        except msgspec.DecodeError as error:
            raise StoreError(f"malformed reply from the store: {error}") from None
        if isinstance(reply, Acknowledged):
            return reply
        if reply.not_owned:
            raise RunNotOwned(reply.message)
        if not reply.retryable:
            raise StoreRejected(reply.message)
        log.warning("the store could not write now (%s); trying again", reply.message)
        await trio.sleep(pause)
        pause = min(pause * 2, retry_after, MAX_RETRY_PAUSE)


async def send_status(
    client: Requester, event: StatusEvent, *, retry_after: float = DEFAULT_RETRY_AFTER
) -> RunStatus:
    """Records a status event; returns the instance's status afterwards.

    A duplicate or late event changes nothing, and the returned status shows it (e.g.
    `error` after `finished` returns `RunStatus.FINISHED`).
    """
    return _status(await deliver(client, event, retry_after=retry_after))


def _status(reply: Acknowledged) -> RunStatus:
    if reply.status is None:
        raise StoreError("the store acknowledged a status event without the status")
    return reply.status


class StoreSink:
    """Batches one run instance's records to the store. Make one with `open_store_sink`."""

    def __init__(
        self,
        client: Requester,
        instance_uid: str,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        linger: float = DEFAULT_LINGER,
        max_pending: int = DEFAULT_MAX_PENDING,
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        if max_batch < 1 or max_pending < max_batch:
            raise ValueError(
                f"need 1 <= max_batch <= max_pending, got max_batch={max_batch}, "
                f"max_pending={max_pending}"
            )
        self.instance_uid = instance_uid
        self._client = client
        self._max_batch = max_batch
        self._linger = linger
        self._max_pending = max_pending
        self._retry_after = retry_after
        self._pending: list[Record] = []
        self._first_pending_at = math.inf
        self._in_flight: RecordBatch | None = None
        self._sequence = 0
        self._emitted = 0
        self._acknowledged = 0
        self._flushing = 0
        self._error: BaseException | None = None
        self._closed = False
        self._changed = trio.Event()
        self._send_lock = trio.Lock()
        self._last_yield = time.monotonic()
        self._scope = trio.CancelScope()

    @property
    def emitted(self) -> int:
        return self._emitted

    @property
    def acknowledged(self) -> int:
        """Records the store has committed."""
        return self._acknowledged

    @property
    def batches(self) -> int:
        """Batches made so far (the sequence number of the latest)."""
        return self._sequence

    async def emit(self, record: Record) -> None:
        """Queues `record`; waits while too many records are unacknowledged."""
        while self._emitted - self._acknowledged >= self._max_pending:
            self._check()
            await self._changed.wait()
        self._check()
        pending = self._pending
        pending.append(record)
        self._emitted += 1
        if len(pending) == 1:
            self._first_pending_at = trio.current_time()
            self._notify()
        now = time.monotonic()
        if len(pending) == self._max_batch:
            self._notify()
        elif now - self._last_yield < YIELD_INTERVAL:
            return
        self._last_yield = now
        await trio.lowlevel.checkpoint()

    async def flush(self) -> None:
        """Returns when every record emitted so far is acknowledged."""
        self._check_error()
        await self._drain()

    async def status(self, event: StatusEvent) -> RunStatus:
        """Flushes, then records `event` (see `send_status`)."""
        await self.flush()
        return _status(await deliver(self._client, event, retry_after=self._retry_after))

    async def aclose(self) -> None:
        """Flushes, then stops the sender task; the sink takes no more records."""
        await self.flush()
        self._closed = True
        self._scope.cancel()

    def _check(self) -> None:
        self._check_error()
        if self._closed:
            raise StoreError(f"the store sink of run instance {self.instance_uid!r} is closed")

    def _check_error(self) -> None:
        if self._error is not None:
            # A refusal for want of ownership keeps its type: the governor must stop.
            kind = RunNotOwned if isinstance(self._error, RunNotOwned) else StoreError
            raise kind(
                f"records of run instance {self.instance_uid!r} cannot be stored: {self._error}"
            ) from self._error

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def run(self) -> None:
        """The sender task: sends batches until cancelled or the store refuses one."""
        with self._scope:
            try:
                while True:
                    await self._wait_for_batch()
                    async with self._send_lock:
                        await self._send_next()
            except Exception as error:
                self._fail(error)

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
            self._notify()
            log.error("store sink of run instance %r failed: %s", self.instance_uid, error)

    async def _wait_for_batch(self) -> None:
        while not self._pending and self._in_flight is None:
            await self._changed.wait()
        if self._in_flight is not None:
            return
        with trio.move_on_at(self._first_pending_at + self._linger):
            while len(self._pending) < self._max_batch and not self._flushing:
                await self._changed.wait()

    async def _drain(self) -> None:
        target = self._emitted
        self._flushing += 1
        self._notify()
        try:
            async with self._send_lock:
                while self._acknowledged < target:
                    await self._send_next()
        finally:
            self._flushing -= 1

    async def _send_next(self) -> None:
        """Sends the batch in flight, or else the next one; the send lock must be held."""
        if self._in_flight is None:
            if not self._pending:
                return
            records = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._first_pending_at = trio.current_time() if self._pending else math.inf
            self._sequence += 1
            self._in_flight = RecordBatch(self.instance_uid, self._sequence, records)
        batch = self._in_flight
        try:
            await deliver(self._client, batch, retry_after=self._retry_after)
        except Exception as error:
            self._fail(error)
            raise
        self._in_flight = None
        self._acknowledged += len(batch.records)
        self._notify()


@asynccontextmanager
async def open_store_sink(
    client: Requester,
    instance_uid: str,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    linger: float = DEFAULT_LINGER,
    max_pending: int = DEFAULT_MAX_PENDING,
    retry_after: float = DEFAULT_RETRY_AFTER,
    close_grace: float = DEFAULT_CLOSE_GRACE,
) -> AsyncIterator[StoreSink]:
    """A `StoreSink` with its sender task, for the records of run instance `instance_uid`.

    Leaving the block normally flushes (waits until every record is acknowledged). When
    the block raises or is cancelled, the sink still tries for `close_grace` seconds to
    store what was emitted, then re-raises. A store that refuses records makes `emit`,
    `flush` and the block's exit raise `StoreError`.
    """
    sink = StoreSink(
        client,
        instance_uid,
        max_batch=max_batch,
        linger=linger,
        max_pending=max_pending,
        retry_after=retry_after,
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sink.run)
            try:
                yield sink
                await sink.flush()
            except BaseException:
                # Records of a failed or cancelled run are facts too: keep what we can.
                if sink._error is None:
                    with trio.move_on_after(close_grace, shield=True):
                        with contextlib.suppress(Exception):
                            await sink._drain()
                raise
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        error = single_error(group, several=StoreError)
        raise error from error.__cause__
