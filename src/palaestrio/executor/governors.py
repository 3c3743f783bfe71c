"""RunGovernor processes, launched in order and, where the launcher allows, ahead of
their runs ("warm").

A governor's process pays a fresh interpreter and its imports (trio, pyzmq, msgspec):
most of a short run. `GovernorPool` starts up to `spares` governors while earlier runs
execute, no more than runs wait for a slot; a run takes the oldest one, or, when none
is there, one started for it. A warm governor learns its run from the start request
(which carries the run), and imports the run's components only then.

Every governor is launched the same way (the launcher's own process group, lifeline and
kill path), under a shielded cancel scope its taker cancels once the graceful way is
over; one never taken is stopped when the pool closes. Launches happen one at a time in
the order governors were asked for, and runs take them in that order: the n-th run to
start gets the n-th launch (with its launcher error, if that launch failed). A warm
governor that died before it was taken is dropped and replaced.
"""

from __future__ import annotations

import collections
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from palaestrio.executor.errors import ExecutorError
from palaestrio.executor.launch import Child, ChildExit, KeepsOutput, LineCallback


class OutputRelay:
    """A governor's output lines go to `target`: set once its run is known. Its output
    whole goes to the target too when that keeps it (a run's log file): from then on."""

    def __init__(self, target: LineCallback) -> None:
        self.target = target

    def __call__(self, line: str) -> None:
        self.target(line)

    async def keep(self, chunk: bytes | bytearray) -> None:
        target: object = self.target  # any line callback; some keep the output too
        if isinstance(target, KeepsOutput):
            await target.keep(chunk)

    def close(self) -> None:
        target: object = self.target
        if isinstance(target, KeepsOutput):
            target.close()


def _shielded() -> trio.CancelScope:
    return trio.CancelScope(shield=True)


@dataclass(eq=False)
class Governor:
    """One RunGovernor process as the executor holds it."""

    run_uid: str | None
    """The run it was launched for; None for a warm one (launched ahead)."""
    output: OutputRelay
    governor_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    kill_scope: trio.CancelScope = field(default_factory=_shielded)
    spawned: trio.Event = field(default_factory=trio.Event)
    """Set once the process is started (`child`) or could not be (`error`)."""
    ended: trio.Event = field(default_factory=trio.Event)
    child: Child | None = None
    exit: ChildExit | None = None
    """As the launcher returned it (with the engine's reason, if any)."""
    error: Exception | None = None
    """What the launcher raised."""
    taken: bool = False

    @property
    def warm(self) -> bool:
        return self.run_uid is None

    @property
    def dead(self) -> bool:
        return self.child is not None and (self.child.exited.is_set() or self.child.is_reaped())

    def stop(self) -> None:
        """The launcher's kill path (a no-op once the process has exited)."""
        self.kill_scope.cancel()


Spawn = Callable[[Governor, trio.TaskStatus[Child]], Awaitable[ChildExit]]
"""Launches `governor`'s process; reports its `Child` once started, returns its exit."""


class _Started:
    """The task status `Spawn` reports to: records the child on the governor."""

    def __init__(self, governor: Governor) -> None:
        self.governor = governor

    def started(self, value: Any = None) -> None:
        self.governor.child = value
        self.governor.spawned.set()


class GovernorPool:
    """Launches governors for runs; see the module's docstring.

    `waiting` (a ``trio_util.AsyncValue[int]``): how many runs wait to start."""

    def __init__(self, spawn: Spawn, *, spares: int, waiting: Any, on_line: LineCallback) -> None:
        self.spawn = spawn
        self.spares = spares
        self.waiting = waiting
        self.on_line = on_line
        """Where a warm governor's lines go before its run is known."""
        self._ready: collections.deque[Governor] = collections.deque()
        self._send, self._queue = trio.open_memory_channel[Governor](math.inf)
        self._nursery: trio.Nursery | None = None
        self._closed = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                async with trio.open_nursery() as helpers:
                    helpers.start_soon(self._launch_in_order)
                    helpers.start_soon(self._keep_spares)
                    task_status.started()
                    await self._closed.wait()
                    helpers.cancel_scope.cancel()
            finally:
                self._closed.set()
                self._send.close()
                for governor in [*self._ready, *self._queue_contents()]:
                    self._abandon(governor)

    def close(self) -> None:
        """Stops the governors never taken; taken ones stay their takers'."""
        self._closed.set()

    async def take(self, run_uid: str) -> Governor:
        """The oldest warm governor alive, or one launched now; started (or with the
        launcher's error)."""
        if self._closed.is_set():
            await trio.lowlevel.checkpoint()  # cancelled, as the executor is, most likely
            raise ExecutorError("the executor is stopping")
        while self._ready and self._ready[0].dead:
            self._ready.popleft()
        if self._ready:
            governor = self._ready.popleft()
        else:
            governor = Governor(run_uid, OutputRelay(self.on_line))
            self._send.send_nowait(governor)
        governor.taken = True
        self._top_up()
        try:
            await governor.spawned.wait()
        except BaseException:
            governor.stop()
            raise
        return governor

    def _top_up(self) -> None:
        if self._closed.is_set() or self.spares <= 0:
            return
        wanted = min(self.spares, self.waiting.value)
        while len(self._ready) < wanted:
            governor = Governor(None, OutputRelay(self.on_line))
            self._ready.append(governor)
            self._send.send_nowait(governor)

    async def _keep_spares(self) -> None:
        async for _ in self.waiting.eventual_values():
            self._top_up()

    async def _launch_in_order(self) -> None:
        assert self._nursery is not None
        async for governor in self._queue:
            self._nursery.start_soon(self._run, governor)
            await governor.spawned.wait()

    async def _run(self, governor: Governor) -> None:
        try:
            with governor.kill_scope:
                governor.exit = await self.spawn(governor, _Started(governor))
        except Exception as error:  # the taker raises it: it fails that run only
            governor.error = error
        finally:
            governor.spawned.set()
            governor.ended.set()
            if governor.child is not None and governor in self._ready:
                self._ready.remove(governor)  # died before it was taken
                self._top_up()

    def _queue_contents(self) -> list[Governor]:
        pending = []
        while True:
            try:
                pending.append(self._queue.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return pending

    @staticmethod
    def _abandon(governor: Governor) -> None:
        """A governor nobody will take: stopped (its launch, if any, then ends), and
        one never launched must not keep anyone waiting."""
        governor.stop()
        if not governor.spawned.is_set():
            governor.error = ExecutorError("the executor is stopping")
            governor.spawned.set()
            governor.ended.set()
