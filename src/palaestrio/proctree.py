"""Process trees on Linux: who descends from whom, and how to end all of them.

A process group is not enough to find a run's processes: a component's child can call
``setsid()`` and leave the group. Descent is what stays: with ``PR_SET_CHILD_SUBREAPER``
set on an ancestor, an orphan is re-parented to that ancestor instead of PID 1, so every
process a governor started, at any depth, remains its descendant while the governor
lives. `kill_tree` walks ``/proc`` for that descent and SIGKILLs it, again and again
until no descendant is left (one may fork between two passes).

Elsewhere than Linux these functions find nothing and set nothing; the process group
kill of the launcher still applies.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
_PROC = Path("/proc")
LIFELINE_VARIABLE = "PALAESTRIO_LIFELINE_FD"
"""Names the fd of a pipe whose write end only the parent holds: EOF = parent gone."""
KILL_PASSES = 20
"""How often `kill_tree` walks again for processes forked while it was killing."""


@functools.cache
def _libc() -> Any:
    """The C library this interpreter is linked with (``CDLL(None)``: its own symbols;
    `ctypes.util.find_library` would fork ``ldconfig -p`` on every call)."""
    import ctypes  # only here: a tenth of the imports a governor needs otherwise

    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> int:
    if not sys.platform.startswith("linux"):
        return -1
    return int(_libc().prctl(option, value, 0, 0, 0))


def set_child_subreaper(on: bool = True) -> bool:
    """Makes this process adopt its orphaned descendants; returns the previous value."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    previous = ctypes.c_int(0)
    _libc().prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(previous), 0, 0, 0)
    _prctl(_PR_SET_CHILD_SUBREAPER, int(on))
    return bool(previous.value)


def set_parent_death_signal(signum: int) -> None:
    """Asks the kernel to send `signum` when the thread that started us ends.

    Linux ties this to the parent *thread*, and trio spawns from worker threads that
    end when idle: the receiver must check ``os.getppid()`` before believing it.
    """
    _prctl(_PR_SET_PDEATHSIG, signum)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], ppid [1])."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text.rsplit(")", 1)[1].split()


def parents() -> dict[int, int]:
    """Every live (non-zombie) process's parent pid."""
    found: dict[int, int] = {}
    with os.scandir(_PROC) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] != "Z":
                found[int(entry.name)] = int(fields[1])
    return found


def descendants(pid: int, parent_of: dict[int, int] | None = None) -> list[int]:
    """Live descendants of `pid` (not `pid` itself), parents before their children."""
    parent_of = parents() if parent_of is None else parent_of
    children: dict[int, list[int]] = {}
    for child, parent in parent_of.items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    frontier = [pid]
    while frontier:
        nxt = [c for p in frontier for c in children.get(p, ())]
        found += nxt
        frontier = nxt
    return found


def is_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot: with the pid, names one process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def kill(pids: Iterable[int], signum: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def reap(pids: Iterable[int]) -> None:
    """Collects the exit status of those `pids` that are our exited children."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def kill_tree(
    root: int, *, include_root: bool = False, reap_root: bool = False, wait: float = 1.0
) -> list[int]:
    """SIGKILLs every descendant of `root` (and `root` itself if asked), reaps those that
    are our children, and waits up to `wait` seconds until all are dead.

    `root` itself is reaped only with `reap_root`: a child that trio (or a `Popen`)
    waits for must keep its exit status for that waiter. Returns the pids it killed.
    Parents are killed before children, so a child cannot be re-parented out of reach
    between two passes.
    """
    killed: list[int] = []
    for _ in range(KILL_PASSES):
        targets = descendants(root)
        if include_root and is_alive(root):
            targets.insert(0, root)
        if not targets:
            break
        kill(targets)
        killed += targets
    deadline = time.monotonic() + wait
    pending = set(killed)
    reapable = pending if reap_root else pending - {root}
    while pending:
        reap(reapable & pending)
        pending = {pid for pid in pending if is_alive(pid)}
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.002)
    return killed


def orphans_marked(marker: bytes, parent: int | None = None) -> list[int]:
    """Our live children whose environment holds `marker` (``NAME=value``): processes
    of a governor that died before it could kill them, re-parented to us."""
    parent = os.getpid() if parent is None else parent
    found = []
    for pid, ppid in parents().items():
        if ppid != parent:
            continue
        try:
            environ = (_PROC / str(pid) / "environ").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if marker in environ.split(b"\0"):
            found.append(pid)
    return found
