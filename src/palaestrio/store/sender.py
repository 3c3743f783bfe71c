"""The sending side of the store: a record sink for the RunGovernor, and status events.

`open_store_sink` runs a `StoreSink` (a `palaestrio.records.RecordSink`) with a sender
thread. `emit` only queues a record; the thread batches, encodes and sends, so records
reach the store while the step loop keeps stepping, and also while it is blocked in a
component (a sender task would wait for the loop to yield). Batches are adaptive: one
goes out when `send_at` records are queued or `linger` seconds after its first record,
so a light stream reaches the database within a second and a heavy one travels in large
batches; a batch takes all that is queued, up to `max_batch` records, so batches grow
while the store is slow (each commit waits for the disk) and fewer commits carry the
stream. One batch is in flight at a time, which keeps the batches of a run in order
(a phase's first record precedes its steps). A batch is kept until the store
acknowledges its commit; without a reply within `retry_after` seconds (the broker or the
store restarted) the same batch is sent again, and the store's natural keys make the
resend harmless. `emit` waits while `max_pending` records are unacknowledged.

`send_status` (from `delivery.py`) sends one status event with the same resend rule;
`StoreSink.status` first flushes the sink, so a run's `finished` follows its last record.

A store only takes requests for the run instances its own executor scheduled; for any
other it answers "not owned", and the sender raises `RunNotOwned` (from `emit`, `flush`
and the sink's block as well): a RunGovernor whose executor is gone stops there.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from palaestrio.mdp.client import Client
from palaestrio.records import Record
from palaestrio.status import RunStatus
from palaestrio.store import messages
from palaestrio.store.delivery import (
    DEFAULT_RETRY_AFTER,
    Abandoned,
    AsyncRequester,
    BlockingRequester,
    LoopRequester,
    SocketRequester,
    call_soon_in_loop,
    deliver,
    deliver_blocking,
    send_status,
    status_of,
)
from palaestrio.store.errors import RunNotOwned, StoreError
from palaestrio.store.messages import RecordBatch, StatusEvent

log = logging.getLogger(__name__)

Requester = AsyncRequester
__all__ = ["Requester", "StoreSink", "deliver", "open_store_sink", "send_status"]

DEFAULT_SEND_AT = 2048
DEFAULT_MAX_BATCH = 4 * DEFAULT_SEND_AT
DEFAULT_LINGER = 0.2
DEFAULT_MAX_PENDING = 2 * DEFAULT_MAX_BATCH
DEFAULT_CLOSE_GRACE = 10.0


class StoreSink:
    """Batches one run instance's records to the store. Make one with `open_store_sink`.

    Shared with the sender thread: the queue (a deque: append and popleft are atomic),
    counters each side alone writes, and flags; the thread wakes the loop through its
    token, the loop wakes the thread through `_wakeup`.
    """

    def __init__(
        self,
        client: Requester,
        instance_uid: str,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        send_at: int | None = None,
        linger: float = DEFAULT_LINGER,
        max_pending: int = DEFAULT_MAX_PENDING,
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        send_at = min(max_batch, DEFAULT_SEND_AT) if send_at is None else send_at
        if not 1 <= send_at <= max_batch <= max_pending:
            raise ValueError(
                f"need 1 <= send_at <= max_batch <= max_pending, got send_at={send_at}, "
                f"max_batch={max_batch}, max_pending={max_pending}"
            )
        self.instance_uid = instance_uid
        self._client = client
        self._max_batch = max_batch
        self._send_at = send_at
        self._linger = linger
        self._max_pending = max_pending
        self._retry_after = retry_after
        self._queue: deque[Record] = deque()
        self._first_queued_at = math.inf
        self._sequence = 0
        self._emitted = 0  # the loop's
        self._acknowledged = 0  # the thread's
        self._flushing = 0  # the loop's
        self._error: BaseException | None = None
        self._closed = False
        self._stopping = False
        self._wakeup = threading.Event()
        self._abandon = threading.Event()
        self._hasten = threading.Event()
        """The run is stopping: resend at once (`deliver_blocking`); set with `_abandon`."""
        self._changed = trio.Event()
        self._thread_done = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._thread: threading.Thread | None = None

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
        if self._emitted - self._acknowledged >= self._max_pending or self._error is not None:
            await self._wait_for_room()
        if self._closed:
            self._check()
        queue = self._queue
        if not queue:
            self._first_queued_at = time.monotonic()
        queue.append(record)
        self._emitted += 1
        if (len(queue) == 1 or len(queue) >= self._send_at) and not self._wakeup.is_set():
            self._wakeup.set()

    async def _wait_for_room(self) -> None:
        while True:
            self._check()
            changed = self._changed
            if self._emitted - self._acknowledged < self._max_pending:
                return
            await changed.wait()

    async def flush(self) -> None:
        """Returns when every record emitted so far is acknowledged."""
        self._check_error()
        target = self._emitted
        self._flushing += 1
        self._wakeup.set()
        try:
            while self._acknowledged < target:
                self._check_error()
                changed = self._changed
                if self._thread_done.is_set() and self._acknowledged < target:
                    raise StoreError(f"the store sink of run instance {self.instance_uid!r} "
                                     "stopped with records unsent")  # fmt: skip
                await changed.wait()
        finally:
            self._flushing -= 1

    async def status(self, event: StatusEvent) -> RunStatus:
        """Flushes, then records `event` (see `send_status`)."""
        await self.flush()
        return status_of(await deliver(self._client, event, retry_after=self._retry_after))

    def hasten(self) -> None:
        """The run is stopping: a batch the store refused for now is sent again at once,
        and soon after each refusal (a stopping executor's store then decides)."""
        self._hasten.set()

    async def aclose(self) -> None:
        """Flushes, then stops the sender thread; the sink takes no more records."""
        await self.flush()
        self._closed = True
        await self._stop()

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

    # the sender thread -----------------------------------------------------------------

    def start(self) -> None:
        requester: BlockingRequester
        if isinstance(self._client, Client):
            requester = SocketRequester(self._client.endpoint)
        else:
            requester = LoopRequester(self._client, self._token)
        self._thread = threading.Thread(
            target=self._send_batches, args=(requester,), name="store-sink", daemon=True
        )
        self._thread.start()

    async def _stop(self, grace: float = DEFAULT_CLOSE_GRACE) -> None:
        """Lets the thread send what is queued for `grace` seconds, then abandons it."""
        self._stopping = True
        self._wakeup.set()
        if self._thread is None:
            return
        with trio.move_on_after(grace, shield=True):
            await self._thread_done.wait()
        self._hasten.set()
        self._abandon.set()
        with trio.move_on_after(1, shield=True):  # an abandoned request ends in a poll slice
            await self._thread_done.wait()

    def _send_batches(self, requester: BlockingRequester) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                frame = messages.encode(batch)
                deliver_blocking(
                    requester,
                    frame,
                    retry_after=self._retry_after,
                    abandon=self._abandon,
                    hasten=self._hasten,
                )
                self._acknowledged += len(batch.records)
                call_soon_in_loop(self._token, self._notify)
        except Abandoned:
            log.warning("store sink of run instance %r gave up sending", self.instance_uid)
        except Exception as error:
            self._error = error
            log.error("store sink of run instance %r failed: %s", self.instance_uid, error)
        finally:
            requester.close()
            call_soon_in_loop(self._token, self._finish)

    def _finish(self) -> None:
        self._thread_done.set()
        self._notify()

    def _next_batch(self) -> RecordBatch | None:
        """Waits until a batch is due and takes it; None once stopping with nothing left."""
        queue, wakeup = self._queue, self._wakeup
        while not self._abandon.is_set():
            wakeup.clear()
            timeout: float | None = None
            if queue:
                if len(queue) >= self._send_at or self._flushing or self._stopping:
                    return self._take()
                timeout = self._first_queued_at + self._linger - time.monotonic()
                if timeout <= 0:
                    return self._take()
            elif self._stopping:
                return None
            wakeup.wait(timeout)
        return None

    def _take(self) -> RecordBatch:
        queue = self._queue
        records = [queue.popleft() for _ in range(min(len(queue), self._max_batch))]
        if queue:
            self._first_queued_at = time.monotonic()
        self._sequence += 1
        return RecordBatch(self.instance_uid, self._sequence, records)


@asynccontextmanager
async def open_store_sink(
    client: Requester,
    instance_uid: str,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    send_at: int | None = None,
    linger: float = DEFAULT_LINGER,
    max_pending: int = DEFAULT_MAX_PENDING,
    retry_after: float = DEFAULT_RETRY_AFTER,
    close_grace: float = DEFAULT_CLOSE_GRACE,
) -> AsyncIterator[StoreSink]:
    """A `StoreSink` with its sender thread, for the records of run instance `instance_uid`.

    A `palaestrio.mdp.client.Client` gives the thread a socket of its own to the same
    broker (so records flow while the loop is blocked); any other requester is called
    in this trio loop. Leaving the block normally flushes (waits until every record is
    acknowledged). When the block raises or is cancelled, the sink still tries for
    `close_grace` seconds to store what was emitted, then re-raises. A store that
    refuses records makes `emit`, `flush` and the block's exit raise `StoreError`.
    """
    sink = StoreSink(
        client,
        instance_uid,
        max_batch=max_batch,
        send_at=send_at,
        linger=linger,
        max_pending=max_pending,
        retry_after=retry_after,
    )
    sink.start()
    grace = close_grace
    try:
        yield sink
        await sink.flush()
    except BaseException:
        # Records of a failed or cancelled run are facts too: keep what we can, soon.
        sink.hasten()
        if sink._error is None:
            with trio.move_on_after(close_grace, shield=True) as waited:
                with contextlib.suppress(Exception):
                    await sink.flush()
            if waited.cancelled_caught:
                grace = 0
        raise
    finally:
        sink._closed = True
        await sink._stop(grace)
