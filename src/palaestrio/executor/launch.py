"""Starting and stopping child processes so that none outlives its supervisor.

A `Launcher` starts one command line and reports what happened to it; the executor
relies on nothing else (plus MDP heartbeats), so an engine launcher (a Slurm ``srun``
step, a Ray task) can stand in for the local one later.

`LocalLauncher` runs the child with `trio.run_process` in a session of its own (so a ^C
in the terminal reaches only the executor), merges its stdout and stderr into one pipe
that a task drains (forwarding lines to a callback, keeping the tail for error
reports), and on cancellation signals the child's whole process group: SIGTERM, then
SIGKILL after ``term_grace``. Because trio stops ``deliver_cancel`` as soon as the
*direct* child exits (trio-notes §2.2), a final SIGKILL sweep of the group runs after
the child is reaped, so grandchildren die too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import trio

STDERR_TAIL_BYTES = 4096
DRAIN_GRACE = 0.5
"""How long to read what a child wrote before it died, after it is reaped."""


@dataclass(frozen=True)
class ChildExit:
    returncode: int
    output_tail: str
    """The last few KiB the child wrote to stdout/stderr."""

    def describe(self) -> str:
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"killed by {name}"
        return f"exit status {self.returncode}"


@dataclass(eq=False)
class Child:
    """A started child, as a launcher reports it."""

    pid: int
    exited: trio.Event = field(default_factory=trio.Event)
    exit: ChildExit | None = None

    def kill_now(self) -> None:
        """SIGKILL the child's process group at once (the second ^C)."""
        if not self.exited.is_set():
            signal_group(self.pid, signal.SIGKILL)


LineCallback = Callable[[str], None]


class Launcher(Protocol):
    async def run(
        self,
        argv: Sequence[str],
        *,
        on_output_line: LineCallback | None = None,
        task_status: trio.TaskStatus[Child] = trio.TASK_STATUS_IGNORED,
    ) -> ChildExit:
        """Runs `argv` to its end; reports the `Child` once it is started.

        Cancelling the call stops the child (and everything it started) before it
        returns or raises; `Child.exit` is set either way.
        """
        ...


def signal_group(pgid: int, signum: signal.Signals) -> None:
    # Gone already is fine (EPERM: a zombie group leader on some kernels).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class LocalLauncher:
    """Runs children on this machine, each in a process group of its own."""

    def __init__(self, *, term_grace: float = 1.0, env: Mapping[str, str] | None = None) -> None:
        self.term_grace = term_grace
        self.env = env

    async def _deliver_cancel(self, process: trio.Process) -> None:
        signal_group(process.pid, signal.SIGTERM)
        await trio.sleep(self.term_grace)
        signal_group(process.pid, signal.SIGKILL)

    async def run(
        self,
        argv: Sequence[str],
        *,
        on_output_line: LineCallback | None = None,
        task_status: trio.TaskStatus[Child] = trio.TASK_STATUS_IGNORED,
    ) -> ChildExit:
        child: Child | None = None
        process: trio.Process | None = None
        output = _OutputTail(on_output_line)
        try:
            async with trio.open_nursery() as nursery:
                process = await nursery.start(
                    partial(
                        trio.run_process,
                        list(argv),
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        check=False,
                        env=self.env,
                        deliver_cancel=self._deliver_cancel,
                    )
                )
                assert process is not None and process.stdout is not None
                child = Child(process.pid)
                task_status.started(child)
                nursery.start_soon(output.drain, process.stdout)
                await process.wait()
                # Grandchildren may hold the pipe open: they go first, then we read.
                signal_group(process.pid, signal.SIGKILL)
                with trio.move_on_after(DRAIN_GRACE):
                    await output.done.wait()
                nursery.cancel_scope.cancel()
        finally:
            if process is not None:
                signal_group(process.pid, signal.SIGKILL)
                if child is not None:
                    returncode = process.returncode if process.returncode is not None else -9
                    child.exit = ChildExit(returncode, output.tail())
                    child.exited.set()
        assert child is not None and child.exit is not None
        return child.exit


class _OutputTail:
    def __init__(self, on_line: LineCallback | None) -> None:
        self.on_line = on_line
        self.buffer = bytearray()
        self.partial_line = b""
        self.done = trio.Event()

    async def drain(self, stream: trio.abc.ReceiveStream) -> None:
        try:
            async with stream:
                async for chunk in stream:
                    self.buffer += chunk
                    del self.buffer[:-STDERR_TAIL_BYTES]
                    if self.on_line is not None:
                        *lines, self.partial_line = (self.partial_line + chunk).split(b"\n")
                        for line in lines:
                            self.on_line(line.decode(errors="replace"))
        finally:
            if self.partial_line and self.on_line is not None:
                self.on_line(self.partial_line.decode(errors="replace"))
            self.done.set()

    def tail(self) -> str:
        return self.buffer.decode(errors="replace")
