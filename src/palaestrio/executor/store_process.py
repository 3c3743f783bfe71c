"""The store as a child process of the executor, supervised the way OTP would.

The store's database writes (SQLite's mapped memory included) happen in a process of
their own, started with the `LocalLauncher` (own session, lifeline pipe, killed with its
whole tree), so a storage fault that kills it (SIGBUS) leaves the executor standing. A
store process that dies is started again with the same executor id (it keeps its runs;
senders resend what was not acknowledged, and resent requests are idempotent), at most
`store_restarts` times within `store_restart_seconds`; past that, the store has failed.

Failed, here or as the store process reports it ("palaestrio store failed: ..."),
means for good: `on_failure` gets the reason once.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from palaestrio.curve import CurveServer
from palaestrio.executor.launch import Child, ChildExit, LocalLauncher
from palaestrio.executor.options import ExecutorOptions
from palaestrio.store.errors import StoreError

log = logging.getLogger("palaestrio.executor")
store_log = logging.getLogger("palaestrio.store")

# As `palaestrio.store.__main__` prints them (not imported: it loads the store's
# dependencies, which only the store process needs).
READY = "palaestrio store ready"
FAILED = "palaestrio store failed: "
START_ERROR = "palaestrio store: "


class StoreLines:
    """Reads the store process's output: ready, failed, start errors, log lines."""

    def __init__(self, on_failure: Callable[[str], None]) -> None:
        self.ready = trio.Event()
        self.start_error: list[str] = []
        self._on_failure = on_failure

    def __call__(self, line: str) -> None:
        if line == READY:
            self.ready.set()
        elif line.startswith(FAILED):
            self._on_failure(line.removeprefix(FAILED))
        elif line.startswith(START_ERROR) or self.start_error:
            self.start_error.append(line.removeprefix(START_ERROR))
        else:
            level_name, _, rest = line.partition(" ")
            level = logging.getLevelName(level_name)
            if isinstance(level, int):
                store_log.log(level, "%s", rest.removeprefix(f"{store_log.name}: "))
            elif line.strip():
                store_log.warning("%s", line)


class StoreSupervisor:
    def __init__(
        self,
        store_uri: str,
        endpoint: str,
        executor_id: str,
        options: ExecutorOptions,
        on_failure: Callable[[str], None],
        env: dict[str, str] | None = None,
        curve_server: CurveServer | None = None,
    ) -> None:
        self.store_uri = store_uri
        self.curve_server = curve_server
        """With it, each store process gets CURVE keys of its own, as a governor does."""
        self.endpoint = endpoint
        self.executor_id = executor_id
        self.options = options
        self.failure: str | None = None
        self.restarts = 0
        self._on_failure = on_failure
        self._launcher = LocalLauncher(term_grace=options.term_grace, env=env)
        self._ready_child: Child | None = None
        self._hurried = False
        self._restart_times: collections.deque[float] = collections.deque()

    @property
    def pid(self) -> int | None:
        """The store process serving now, if one is."""
        child = self._ready_child
        return child.pid if child is not None and not child.is_reaped() else None

    def hurry(self) -> None:
        """The executor is stopping: the store retries no failed write from now on."""
        self._hurried = True
        pid = self.pid  # only once ready: before that, SIGUSR1 would kill it
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
            self._on_failure(reason)

    def argv(self, *, create: bool) -> list[str]:
        options = self.options
        level = logging.getLevelName(store_log.getEffectiveLevel())
        return [
            sys.executable,
            "-m",
            "palaestrio.store",
            "--uri",
            self.store_uri,
            "--broker",
            self.endpoint,
            "--executor-id",
            self.executor_id,
            "--executor-pid",
            str(os.getpid()),
            "--lease-seconds",
            str(options.lease_seconds),
            "--heartbeat-interval",
            str(options.heartbeat_interval),
            "--heartbeat-liveness",
            str(options.heartbeat_liveness),
            "--write-retries",
            str(options.store_write_retries),
            "--write-retry-seconds",
            str(options.store_write_retry_seconds),
            "--log-level",
            level if isinstance(level, str) else "WARNING",
            *(["--create"] if create else []),
        ]

    async def serve(self, *, task_status: trio.TaskStatus[StoreSupervisor]) -> None:
        """Runs the store process until cancelled (or failed); started once it is ready.

        A store process that cannot start the first time raises `StoreError` with its
        reason, before `started`: no run starts without a store.
        """
        create = self.store_uri.startswith("sqlite")
        waiting: list[trio.TaskStatus[StoreSupervisor]] = [task_status]

        def on_ready() -> None:
            if waiting:
                waiting.pop().started(self)

        while True:
            lines = StoreLines(self.fail)
            exit_ = await self._incarnation(lines, on_ready, create=create)
            why = "\n".join(lines.start_error) or _describe(exit_)
            if waiting:  # the first store process never got ready
                raise StoreError(why)
            if self.failure is not None:
                return
            if not self._may_restart():
                self.fail(
                    f"the store process ended ({why}) after {self.restarts} restarts within "
                    f"{self.options.store_restart_seconds:g} s; not restarted again"
                )
                return
            self.restarts += 1
            log.warning("the store process ended (%s); restarting it", why)
            create = False

    async def _incarnation(
        self, lines: StoreLines, on_ready: Callable[[], None], *, create: bool
    ) -> ChildExit:
        argv = self.argv(create=create)
        keys = self.curve_server.admit() if self.curve_server is not None else None
        run = partial(
            self._launcher.run,
            argv,
            name="store",
            env=keys.environment() if keys is not None else None,
            on_output_line=lines,
        )
        try:
            return await self._watch(run, lines, on_ready)
        finally:
            if keys is not None and self.curve_server is not None:
                self.curve_server.revoke(keys)

    async def _watch(
        self, run: Callable[..., Any], lines: StoreLines, on_ready: Callable[[], None]
    ) -> ChildExit:
        async with trio.open_nursery() as nursery:
            child: Child = await nursery.start(run)
            async with trio.open_nursery() as race:
                race.start_soon(_wait_then_cancel, lines.ready, race.cancel_scope)
                race.start_soon(_wait_then_cancel, child.exited, race.cancel_scope)
            if lines.ready.is_set() and not child.exited.is_set():
                self._ready_child = child
                if self._hurried:
                    self.hurry()
                on_ready()
            await child.exited.wait()
        self._ready_child = None
        assert child.exit is not None
        return child.exit

    def _may_restart(self) -> bool:
        now = trio.current_time()
        times = self._restart_times
        while times and now - times[0] > self.options.store_restart_seconds:
            times.popleft()
        if len(times) >= self.options.store_restarts:
            return False
        times.append(now)
        return True


async def _wait_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _describe(exit_: ChildExit) -> str:
    tail = [line for line in exit_.output_tail.strip().splitlines() if line != READY][-3:]
    return exit_.describe() + (": " + " | ".join(tail) if tail else "")
