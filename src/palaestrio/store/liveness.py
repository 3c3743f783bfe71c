"""Is a run's executor still there? Judged from what it registered and from this host.

An executor registers (`palaestrio.store.ownership.register_executor`) its host name,
the kernel's boot id, its pid namespace, its pid with the pid's start time, and a lease
it renews. Another process judges it by the most direct evidence it has:

- Same host, boot id and pid namespace: the process decides. The owner is gone when no
  live process has its pid, or the one that has it started at another time (the pid was
  reused). A live owner stays alive whatever its lease says (it may be stopped, or its
  database slow): a run whose owner is alive is never touched.
- Same host name, another boot id, and the owner started before this boot: the host
  rebooted. (Another machine that happens to share the name has a later start.)
- Anything else (another host, a pid namespace we cannot see into, no /proc): the lease
  decides, in the database's clock, which on PostgreSQL all hosts share.
- An executor that marked itself ended is gone.
"""

from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path

import msgspec

from palaestrio import proctree

_PROC = Path("/proc")


class Machine(msgspec.Struct, frozen=True):
    """Where the judging (or registering) process runs."""

    host: str
    boot_id: str | None
    """The kernel's /proc/sys/kernel/random/boot_id: changes at every boot."""
    pid_namespace: str | None
    """The target of /proc/self/ns/pid: pids compare only inside one namespace."""
    booted_at: datetime.datetime | None


class Owner(msgspec.Struct, frozen=True):
    """An executor as registered in `palaestrio_executors` (times aware UTC)."""

    executor_id: str
    host: str
    boot_id: str | None
    pid_namespace: str | None
    pid: int
    pid_started: int | None
    """Field 22 of /proc/<pid>/stat: clock ticks after boot at which the pid started."""
    started_at: datetime.datetime
    lease_expires_at: datetime.datetime
    ended_at: datetime.datetime | None


def this_machine() -> Machine:
    return Machine(
        host=socket.gethostname(),
        boot_id=_read(_PROC / "sys/kernel/random/boot_id"),
        pid_namespace=_link(_PROC / "self/ns/pid"),
        booted_at=_boot_time(),
    )


def process_start(pid: int) -> int | None:
    """The start time of `pid` (field 22 of /proc/<pid>/stat), or None without one."""
    return proctree.start_time(pid)


def why_gone(owner: Owner, here: Machine, now: datetime.datetime) -> str | None:
    """Why `owner` counts as gone, seen from `here` at database time `now`; None if alive."""
    if owner.ended_at is not None:
        return f"executor {owner.executor_id} ended at {owner.ended_at:%Y-%m-%d %H:%M:%S}"
    if owner.host == here.host and owner.boot_id is not None and here.boot_id is not None:
        if owner.boot_id == here.boot_id and owner.pid_namespace == here.pid_namespace:
            return _process_gone(owner)
        if (
            owner.boot_id != here.boot_id
            and here.booted_at is not None
            and owner.started_at < here.booted_at
        ):
            return f"host {owner.host} rebooted since executor {owner.executor_id} started"
    if owner.lease_expires_at < now:
        return (
            f"the lease of executor {owner.executor_id} on {owner.host} expired at "
            f"{owner.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC"
        )
    return None


def _process_gone(owner: Owner) -> str | None:
    gone = f"executor process {owner.pid} on {owner.host} is gone"
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return gone
    except PermissionError:
        pass  # another user's process: it exists
    started = process_start(owner.pid)
    if started is None:
        return None  # it exists, but /proc hides it (hidepid): alive as far as we can see
    if not proctree.is_alive(owner.pid):
        return f"{gone} (a zombie)"
    if owner.pid_started is not None and started != owner.pid_started:
        return f"{gone} (its pid was reused)"
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _link(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _boot_time() -> datetime.datetime | None:
    for line in (_read(_PROC / "stat") or "").splitlines():
        if line.startswith("btime "):
            return datetime.datetime.fromtimestamp(int(line.split()[1]), datetime.UTC)
    return None
