"""Starting and stopping child processes so that none outlives its supervisor.

A `Launcher` starts one command line and reports what happened to it; the executor
relies on nothing else (plus MDP heartbeats), so an engine launcher (a Slurm ``srun``
step) can stand in for the local one.

`LocalLauncher` runs the child with `trio.run_process` in a session of its own (a ^C in
the terminal reaches only the executor) and ties it to this process four ways:

* a lifeline pipe: the child gets the read end (its fd in ``PALAESTRIO_LIFELINE_FD``);
  the write end stays here, so the child sees EOF the moment this process dies, even
  by SIGKILL;
* on cancellation the child's process group gets SIGTERM, and after ``term_grace`` every
  descendant of the child (``setsid()`` escapees too, found by descent) and the group
  get SIGKILL;
* this process is a child subreaper while it has children, so descendants orphaned by a
  SIGKILLed child come to us, not to PID 1; after the child is reaped, those carrying
  its launch mark (``PALAESTRIO_LAUNCH`` in their environment) are killed and reaped;
* a final SIGKILL of the group, since trio stops ``deliver_cancel`` as soon as the
  *direct* child exits (trio-notes §2.2).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, runtime_checkable

import trio

from palaestrio import proctree

OUTPUT_TAIL_BYTES = 4096
MAX_LINE_BYTES = 16 * 1024
"""Longer output lines are cut (the rest is counted, not kept)."""
DRAIN_GRACE = 0.5
"""How long to read what a child wrote before it died, after it is reaped."""
LAUNCH_MARK_VARIABLE = "PALAESTRIO_LAUNCH"


@dataclass(frozen=True)
class ChildExit:
    returncode: int
    output_tail: str
    """The last few KiB the child wrote to stdout/stderr."""
    engine_reason: str | None = None
    """What the engine that placed the child says happened (Slurm's NODE_FAIL, ...)."""

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
    is_reaped: Callable[[], bool] = lambda: False
    """Once true the pid may be another process's: never signal it by pid again."""

    def kill_now(self) -> None:
        """SIGKILLs the child and everything it started, at once (the second ^C)."""
        if not self.is_reaped():
            kill_group_and_tree(self.pid)


LineCallback = Callable[[str], None]


@runtime_checkable
class KeepsOutput(Protocol):
    """A line callback that also takes the child's output whole, as it arrives."""

    async def keep(self, chunk: bytes | bytearray) -> None: ...

    def close(self) -> None: ...


class Launcher(Protocol):
    async def run(
        self,
        argv: Sequence[str],
        *,
        name: str = "",
        env: Mapping[str, str] | None = None,
        on_output_line: LineCallback | None = None,
        task_status: trio.TaskStatus[Child] = trio.TASK_STATUS_IGNORED,
    ) -> ChildExit:
        """Runs `argv` to its end; reports the `Child` once it is started.

        `name`: what the child is (the run's uid), for engines that name their jobs.
        `env`: variables the child gets on top of the launcher's environment (secrets
        such as CURVE keys go here, never into `argv`).

        Cancelling the call stops the child (and everything it started) before it
        returns or raises; `Child.exit` is set either way.
        """
        ...


def signal_group(pgid: int, signum: signal.Signals) -> None:
    # Gone already is fine (EPERM: a zombie group leader on some kernels).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def kill_group_and_tree(pid: int) -> None:
    """SIGKILL for `pid`, its descendants (wherever their session) and its group."""
    proctree.kill_tree(pid, include_root=True, wait=0)
    signal_group(pid, signal.SIGKILL)


class _Subreaper:
    """This process adopts orphans while it has local children, then goes back to what
    it was (a library user's program should not keep adopting strangers)."""

    def __init__(self) -> None:
        self.users = 0
        self.previous = False

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self.users == 0:
            self.previous = proctree.set_child_subreaper(True)
        self.users += 1
        try:
            yield
        finally:
            self.users -= 1
            if self.users == 0 and not self.previous:
                proctree.set_child_subreaper(False)


_SUBREAPER = _Subreaper()


class LocalLauncher:
    """Runs children on this machine, each in a session and process group of its own."""

    lifeline = True
    """Whether the child gets the lifeline pipe (a child on another machine cannot)."""
    warm_start = True
    """Whether governors may be started ahead of their runs (`ExecutorOptions.warm_governors`);
    a launcher that places each child for a named run (a Slurm step) says no."""

    def __init__(self, *, term_grace: float = 1.0, env: Mapping[str, str] | None = None) -> None:
        self.term_grace = term_grace
        self.env = env

    async def _deliver_cancel(self, process: trio.Process) -> None:
        signal_group(process.pid, signal.SIGTERM)
        await trio.sleep(self.term_grace)
        kill_group_and_tree(process.pid)

    async def run(
        self,
        argv: Sequence[str],
        *,
        name: str = "",
        env: Mapping[str, str] | None = None,
        on_output_line: LineCallback | None = None,
        task_status: trio.TaskStatus[Child] = trio.TASK_STATUS_IGNORED,
    ) -> ChildExit:
        mark = f"{LAUNCH_MARK_VARIABLE}={uuid.uuid4().hex}"
        lifeline_read, lifeline_write = os.pipe() if self.lifeline else (None, None)
        child_env = dict(os.environ if self.env is None else self.env)
        child_env.update(env or {})
        child_env.pop(proctree.LIFELINE_VARIABLE, None)
        if lifeline_read is not None:
            child_env[proctree.LIFELINE_VARIABLE] = str(lifeline_read)
        child_env[LAUNCH_MARK_VARIABLE] = mark.partition("=")[2]
        try:
            with _SUBREAPER.held():
                return await self._run(argv, child_env, lifeline_read, on_output_line, task_status)
        finally:
            if lifeline_write is not None:
                os.close(lifeline_write)  # only now: the child lived as long as we held it
            for orphan in proctree.orphans_marked(mark.encode()):
                proctree.kill_tree(orphan, include_root=True, reap_root=True, wait=0.2)

    async def _run(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        lifeline_read: int | None,
        on_output_line: LineCallback | None,
        task_status: trio.TaskStatus[Child],
    ) -> ChildExit:
        child: Child | None = None
        process: trio.Process | None = None
        output = _OutputTail(on_output_line)
        try:
            async with trio.open_nursery() as nursery:
                try:
                    process = await nursery.start(
                        partial(
                            trio.run_process,
                            list(argv),
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                            check=False,
                            env=env,
                            pass_fds=() if lifeline_read is None else (lifeline_read,),
                            deliver_cancel=self._deliver_cancel,
                        )
                    )
                finally:
                    if lifeline_read is not None:
                        os.close(lifeline_read)
                assert process is not None and process.stdout is not None
                child = Child(process.pid, is_reaped=partial(_is_reaped, process))
                task_status.started(child)
                nursery.start_soon(output.drain, process.stdout)
                await process.wait()
                # Grandchildren may hold the pipe open: they go first, then we read.
                # The pid is reaped: only its group (a pgid in use is never reused).
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


def _is_reaped(process: trio.Process) -> bool:
    return process.returncode is not None


class _OutputTail:
    """Splits a child's output into lines for `on_line`, keeping the last few KiB.

    A line is cut at `MAX_LINE_BYTES` (a 100 MB line without a newline must not become
    100 MB here), saying how much was cut."""

    def __init__(self, on_line: LineCallback | None) -> None:
        self.on_line = on_line
        self.keeper: KeepsOutput | None = on_line if isinstance(on_line, KeepsOutput) else None
        self.buffer = bytearray()
        self.line = bytearray()
        self.cut = 0
        self.done = trio.Event()

    async def drain(self, stream: trio.abc.ReceiveStream) -> None:
        try:
            async with stream:
                async for chunk in stream:
                    if self.keeper is not None:
                        await self.keeper.keep(chunk)
                    self.buffer += chunk[-OUTPUT_TAIL_BYTES:]
                    del self.buffer[:-OUTPUT_TAIL_BYTES]
                    if self.on_line is not None:
                        self.feed(chunk)
        finally:
            if (self.line or self.cut) and self.on_line is not None:
                self._emit()
            if self.keeper is not None:
                self.keeper.close()
            self.done.set()

    def feed(self, chunk: bytes | bytearray) -> None:
        *ended, rest = chunk.split(b"\n")
        for piece in ended:
            self._append(piece)
            self._emit()
        self._append(rest)

    def _append(self, piece: bytes | bytearray) -> None:
        room = max(MAX_LINE_BYTES - len(self.line), 0)
        self.line += piece[:room]
        self.cut += max(len(piece) - room, 0)

    def _emit(self) -> None:
        assert self.on_line is not None
        text = self.line.decode(errors="replace")
        if self.cut:
            text += f" [... {self.cut} more bytes of this line not shown]"
        self.line.clear()
        self.cut = 0
        self.on_line(text)

    def tail(self) -> str:
        return self.buffer.decode(errors="replace")
