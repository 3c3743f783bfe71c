"""Finding the processes a test left behind, by descent, not by what they say of
themselves.

The pytest process is made a child subreaper, so every process a test starts stays its
descendant at any depth: an orphan (a double fork, a `setsid()` escapee whose parent
died, a governor whose executor was SIGKILLed) is re-parented to pytest, not to PID 1.
A leak is then a live descendant that did not exist when the test began. Titles and
environments are not trusted: `setproctitle` overwrites /proc/PID/environ, and a child
may be started with an empty environment. A per-test tag in the environment is still
checked as well, for processes started outside this tree (by another daemon).

Session fixtures (the PostgreSQL server) outlive tests: what they start, and everything
that descends from it, is allowed once they say so (`LeakGuard.allow`).
"""

from __future__ import annotations

import os
import signal
import time

from palaestrio import proctree

TAG_VARIABLE = "PALAESTRIO_TEST_TAG"
SETTLE = 1.0
"""Seconds a SIGKILLed process may take to die before it counts as left behind."""


def unignore_hangup() -> None:
    """Under nohup, the executors we start would inherit an ignored SIGHUP and keep it
    ignored (as palaestrio does under nohup). A handler of ours keeps us alive and is
    reset by exec: they get SIGHUP's default, a terminal hangup as tests mean it."""
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, lambda _signum, _frame: None)


class LeakGuard:
    def __init__(self) -> None:
        self.me = os.getpid()
        proctree.set_child_subreaper()
        self.allowed_roots: set[int] = set()

    def snapshot(self) -> set[int]:
        return set(proctree.descendants(self.me))

    def allow(self, pids: set[int]) -> None:
        self.allowed_roots |= pids

    def _allowed(self, parent_of: dict[int, int]) -> set[int]:
        allowed = set(self.allowed_roots)
        for root in self.allowed_roots:
            allowed.update(proctree.descendants(root, parent_of))
        return allowed

    def leftovers(self, before: set[int], tag: str | None = None) -> list[tuple[int, str]]:
        """Live processes started since `before` was taken (descendants of pytest, or
        tagged with `tag`), waiting up to `SETTLE` seconds for dying ones."""
        deadline = time.monotonic() + SETTLE
        while True:
            self.reap_zombies()
            parent_of = proctree.parents()
            found = set(proctree.descendants(self.me, parent_of)) - before
            if tag is not None:
                found |= tagged(tag, parent_of)
            found -= self._allowed(parent_of)
            found.discard(self.me)
            if not found or time.monotonic() > deadline:
                return [(pid, command_line(pid)) for pid in sorted(found)]
            time.sleep(0.02)

    def reap_zombies(self) -> None:
        """Orphans re-parented to pytest become its zombies when they die."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


def tagged(tag: str, parent_of: dict[int, int]) -> set[int]:
    needle = f"{TAG_VARIABLE}={tag}".encode()
    found = set()
    for pid in parent_of:
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                if needle in file.read().split(b"\0"):
                    found.add(pid)
        except OSError:
            continue
    return found


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
