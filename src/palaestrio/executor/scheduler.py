"""Intake and order: runs are stored as scheduled at once and start in the order they
were scheduled, at most `parallel_runs` at a time.

Intake stays open while the executor runs: a run scheduled from another task while
others execute joins the queue. It closes on shutdown, or, once the caller is done
scheduling, when every scheduled run has ended. After that `add` raises before it
changes anything.

A run that ended `error` may be retried (`Retry` decides): its next attempt is stored as
scheduled at once, waits out its back-off without holding a parallel slot, then queues
for one like any run. It counts as outstanding from before its predecessor stops
counting, so intake never closes in between.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import trio
import trio_util

from palaestrio.executor.errors import ExecutorError
from palaestrio.executor.runs import RunSlot
from palaestrio.executor.statuses import StatusBook
from palaestrio.status import RunStatus

Retry = Callable[[RunSlot], tuple[RunSlot, float] | None]
"""Given a run that ended, its next attempt and the back-off before it, or None."""


class Scheduler:
    def __init__(self, parallel_runs: int) -> None:
        self.parallel_runs = parallel_runs
        self._intake, self._queue = trio.open_memory_channel[RunSlot](math.inf)
        self.outstanding = trio_util.AsyncValue(0)
        """Runs scheduled and not yet ended."""
        self.waiting = trio_util.AsyncValue(0)
        """Runs scheduled and not yet started (governors are started ahead for them)."""
        self.closed_because: str | None = None

    def add(self, slot: RunSlot) -> None:
        if self.closed_because is not None:
            raise ExecutorError(f"cannot schedule runs: {self.closed_because}")
        self.outstanding.value += 1
        self.waiting.value += 1
        self._intake.send_nowait(slot)

    def close(self, because: str) -> None:
        if self.closed_because is None:
            self.closed_because = because
            self._intake.close()

    async def close_when_idle(self) -> None:
        """Waits until every run scheduled (until then) has ended, then closes."""
        await self.outstanding.wait_value(0)
        self.close("the executor has ended")

    async def run(
        self,
        book: StatusBook,
        supervise: Callable[[RunSlot], Awaitable[None]],
        retry: Retry = lambda slot: None,
    ) -> None:
        """Registers and starts runs until intake closes and the queue is empty."""
        ready_in, ready_out = trio.open_memory_channel[RunSlot](math.inf)
        free = trio.Semaphore(self.parallel_runs)  # FIFO: runs start in order

        async def register() -> None:
            async with ready_in:
                async for slot in self._queue:
                    await book.scheduled(slot)
                    ready_in.send_nowait(slot)

        async def start_one(slot: RunSlot) -> None:
            next_attempt = None
            self.waiting.value -= 1
            try:
                await supervise(slot)
                if self.closed_because is None:
                    next_attempt = retry(slot)
                    if next_attempt is not None:
                        self.outstanding.value += 1
                        self.waiting.value += 1
            finally:
                free.release()
                self.outstanding.value -= 1
            if next_attempt is not None:
                # Cancelled from here on, the attempt stays scheduled: the executor's
                # `conclude_unstarted` ends it as cancelled.
                again, delay = next_attempt
                await book.scheduled(again)
                with trio.move_on_after(delay):
                    await again.cancelled.wait()
                await free.acquire()
                await start_one(again)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(register)
            async for slot in ready_out:
                await free.acquire()
                nursery.start_soon(start_one, slot)

    async def conclude_unstarted(self, book: StatusBook, slots: list[RunSlot]) -> None:
        """Runs that never started when the executor stopped end as cancelled."""
        for slot in slots:
            if slot.info.status is RunStatus.SCHEDULED:
                # It may not be registered yet; a second `scheduled` changes nothing.
                await book.scheduled(slot)
                reason = slot.cancel_reason or "executor ended before the run started"
                await book.conclude(slot, RunStatus.CANCELLED, reason)
                self.outstanding.value -= 1
                self.waiting.value -= 1
