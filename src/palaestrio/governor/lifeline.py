"""A RunGovernor dies with its executor, and takes every process it started along.

Three ways to notice the executor is gone, each enough on its own:

* a pipe whose write end only the executor holds: a thread blocks reading it, and EOF
  means the executor's process is gone (however it died, SIGKILL included). A thread,
  not a trio task, so a component that blocks the event loop cannot delay it;
* ``PR_SET_PDEATHSIG``: the kernel signals us when our parent thread ends (trio spawns
  from worker threads that also end when idle, so the handler checks ``getppid()``);
* the MDP worker treats a silent broker as fatal (`serve_worker(reconnect=False)`).

SIGTERM and SIGHUP (the executor's kill path, a closed terminal) end the governor the
same way, without the graceful flush: that path is only taken after the graceful MDP
shutdown failed. Every way out kills the governor's descendants first; the governor is
their child subreaper, so a `setsid()` escapee stays one of them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from palaestrio import proctree

log = logging.getLogger("palaestrio.governor")

EXIT_PARENT_LOST = 3
PARENT_DEATH_SIGNAL = signal.SIGUSR2
"""Not USR1: Slurm's time-limit warning (``--signal=USR1@120``) is a graceful stop."""


def kill_descendants() -> None:
    """Every process this governor started, at any depth (setsid() escapees too)."""
    proctree.kill_tree(os.getpid(), wait=0.5)


def die(why: str, code: int, what: str = "RunGovernor") -> None:
    """Kills our descendants and exits at once (from any thread or a signal handler)."""
    try:
        log.error("%s: stopping this %s and every process it started", why, what)
        kill_descendants()
        logging.shutdown()
        sys.stderr.flush()
    finally:
        os._exit(code)


def hold(lifeline_fd: str | None) -> None:
    """Ties this process's life to its executor's; call it first thing in `main`.

    `lifeline_fd`: the read end of the executor's lifeline pipe, if there is one (a
    remote launcher has none: the broker's silence is the sign there)."""
    proctree.set_child_subreaper()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        die(signal.Signals(signum).name, 128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    tie(lifeline_fd)


def tie(lifeline_fd: str | None, what: str = "RunGovernor") -> None:
    """Only the two ways of `hold` that notice the executor is gone (the parent death
    signal, the lifeline pipe), for a child that handles SIGTERM itself (the store)."""
    parent = os.getppid()

    def on_parent_death(_signum: int, _frame: FrameType | None) -> None:
        if os.getppid() != parent:
            die("the executor is gone (parent death signal)", EXIT_PARENT_LOST, what)

    signal.signal(PARENT_DEATH_SIGNAL, on_parent_death)
    proctree.set_parent_death_signal(PARENT_DEATH_SIGNAL)
    if lifeline_fd:
        fd = int(lifeline_fd)
        watch = threading.Thread(target=_watch_pipe, args=(fd, what), name="lifeline", daemon=True)
        watch.start()


def _watch_pipe(fd: int, what: str) -> None:
    while True:
        try:
            if os.read(fd, 64) == b"":
                break
        except InterruptedError:
            continue
        except OSError:
            break
    die("the executor is gone (its lifeline pipe closed)", EXIT_PARENT_LOST, what)
