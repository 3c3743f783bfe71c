"""Signals: the first SIGINT, SIGTERM or SIGHUP stops gracefully, the next kills.

SIGHUP (the terminal closed) is a request to stop like SIGTERM, not a reason to die
on the spot and orphan the governors; ignored (``nohup``), it stays ignored. The
receiver is iterated by a task outside the runs it cancels, so a second signal is seen
while the first one's shutdown runs.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

import trio

log = logging.getLogger("palaestrio.executor")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def can_watch_signals() -> bool:
    return threading.current_thread() is threading.main_thread()


async def watch_signals(
    on_first: Callable[[signal.Signals], None],
    on_again: Callable[[], None],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    watched = [s for s in STOP_SIGNALS if s != signal.SIGHUP or not _ignored(s)]
    with trio.open_signal_receiver(*watched) as signals:
        task_status.started()
        first = True
        async for signum in signals:
            if first:
                first = False
                name = signal.Signals(signum)
                log.warning("%s: cancelling every run (again to kill at once)", name.name)
                on_first(name)
            else:
                log.warning("second signal: killing every RunGovernor now")
                on_again()


def _ignored(signum: signal.Signals) -> bool:
    return signal.getsignal(signum) == signal.SIG_IGN
