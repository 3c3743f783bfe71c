"""Components for supervision tests; imported by name inside RunGovernor processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import trio

from palaestrio.simulation import (
    ActuatorInformation,
    DummyEnvironment,
    EnvironmentBaseline,
    EnvironmentState,
)

SLEEPER = "import time; time.sleep(600)"
# Forks, lets its child leave the session, and exits: the child's parent is gone, so
# only a subreaper (the governor) keeps it in the run's process tree.
DAEMON = """
import os, sys, time
child = os.fork()
if child:
    with open(sys.argv[1], "a") as f:
        f.write(f" {child}")
    os._exit(0)
os.setsid()
time.sleep(600)
"""


class EscapingEnvironment(DummyEnvironment):
    """Starts a child in a session of its own and a double-forked daemon, writes
    ``<governor pid> <setsid child pid> <daemon pid>`` to `pid_file`, and then steps
    with a trio sleep of `delay` seconds per update."""

    def __init__(
        self, uid: str, seed: int, pid_file: str = "", delay: float = 0.01, max_iter: int = 10
    ) -> None:
        super().__init__(uid, seed, max_iter=max_iter)
        self.pid_file = Path(pid_file)
        self.delay = delay

    def start_environment(self) -> EnvironmentBaseline:
        escaped = subprocess.Popen([sys.executable, "-c", SLEEPER], start_new_session=True)
        partial = self.pid_file.with_suffix(".partial")
        partial.write_text(f"{os.getpid()} {escaped.pid}")
        subprocess.run([sys.executable, "-c", DAEMON, str(partial)], check=True)
        partial.rename(self.pid_file)
        return super().start_environment()

    async def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:  # type: ignore[override]
        await trio.sleep(self.delay)
        return super().update(actuators)


class DeafEnvironment(DummyEnvironment):
    """Blocks the governor's event loop in its first update (so the governor answers
    no shutdown request), after writing its pid to `pid_file`."""

    def __init__(self, uid: str, seed: int, pid_file: str = "", max_iter: int = 10) -> None:
        super().__init__(uid, seed, max_iter=max_iter)
        self.pid_file = Path(pid_file)

    def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:
        self.pid_file.write_text(str(os.getpid()))
        time.sleep(600)
        return super().update(actuators)


class TimedEnvironment(DummyEnvironment):
    """Appends ``<uid> start|end <monotonic time>`` lines to `log_file` around a run
    that lasts about `max_iter` × `delay` seconds."""

    def __init__(
        self, uid: str, seed: int, log_file: str = "", delay: float = 0.05, max_iter: int = 10
    ) -> None:
        super().__init__(uid, seed, max_iter=max_iter)
        self.log_file = Path(log_file)
        self.delay = delay
        self.updates = 0

    def _log(self, what: str) -> None:
        with self.log_file.open("a") as file:
            file.write(f"{os.getpid()} {what} {time.monotonic()}\n")

    def start_environment(self) -> EnvironmentBaseline:
        self._log("start")
        return super().start_environment()

    async def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:  # type: ignore[override]
        await trio.sleep(self.delay)
        self.updates += 1
        state = super().update(actuators)
        if state.done:
            self._log("end")
        return state
