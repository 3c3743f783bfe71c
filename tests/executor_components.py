"""Components for executor tests; imported by name inside RunGovernor processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import trio

from palaestrio.components.environment import EnvironmentBaseline, EnvironmentState
from palaestrio.components.information import ActuatorInformation
from palaestrio.simulation import DummyEnvironment


class FailingEnvironment(DummyEnvironment):
    """Raises in update number `fail_at_step` (1-based)."""

    def __init__(self, uid: str, seed: int, fail_at_step: int = 5, max_iter: int = 10) -> None:
        super().__init__(uid, seed, max_iter=max_iter)
        self.fail_at_step = fail_at_step
        self.updates = 0

    def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:
        self.updates += 1
        if self.updates == self.fail_at_step:
            raise RuntimeError(f"the test environment fails at step {self.updates}")
        return super().update(actuators)


class SlowEnvironment(DummyEnvironment):
    """Sleeps (trio-friendly) in every update, so a run lasts long enough to interrupt."""

    def __init__(self, uid: str, seed: int, delay: float = 0.01, max_iter: int = 10) -> None:
        super().__init__(uid, seed, max_iter=max_iter)
        self.delay = delay

    async def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:  # type: ignore[override]
        await trio.sleep(self.delay)
        return super().update(actuators)


GRANDCHILD = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


class StubbornEnvironment(DummyEnvironment):
    """Ignores SIGTERM, starts a grandchild that ignores it too (its pid goes to
    `pid_file`), and then blocks the governor's event loop in update."""

    def __init__(self, uid: str, seed: int, pid_file: str = "", max_iter: int = 10) -> None:
        super().__init__(uid, seed, max_iter=max_iter)
        self.pid_file = pid_file

    def start_environment(self) -> EnvironmentBaseline:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen([sys.executable, "-c", GRANDCHILD])
        Path(self.pid_file).write_text(f"{os.getpid()} {grandchild.pid}")
        return super().start_environment()

    def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:
        time.sleep(600)
        return super().update(actuators)


class BlockingEnvironment(DummyEnvironment):
    """Blocks the governor's event loop in the update of step `block_at` (0-based), so
    `block_at` steps finish: with `how` "sleep" in time.sleep, with "busy" in a Python
    loop that holds the GIL but for its switch interval. Writes the time it blocked
    (time.time()) to `marker`."""

    def __init__(
        self,
        uid: str,
        seed: int,
        marker: str = "",
        block_at: int = 49,
        how: str = "sleep",
        max_iter: int = 10**6,
    ) -> None:
        super().__init__(uid, seed, max_iter=max_iter)
        self.marker = marker
        self.block_at = block_at
        self.how = how
        self.updates = 0

    def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:
        if self.updates == self.block_at:
            Path(self.marker).write_text(repr(time.time()))
            if self.how == "sleep":
                time.sleep(600)
            while True:
                pass
        self.updates += 1
        return super().update(actuators)


class FailOnceEnvironment(DummyEnvironment):
    """Fails its first start (creating `marker`); runs normally once `marker` exists."""

    def __init__(self, uid: str, seed: int, marker: str = "", max_iter: int = 10) -> None:
        super().__init__(uid, seed, max_iter=max_iter)
        self.marker = Path(marker)

    def start_environment(self) -> EnvironmentBaseline:
        if not self.marker.exists():
            self.marker.write_text("failed once")
            raise RuntimeError("the test environment fails its first attempt")
        return super().start_environment()


class ChattyEnvironment(DummyEnvironment):
    """Prints `lines` numbered lines at its start, then a line of `long_line` bytes
    without a newline, written in 1 MB pieces, then "end"."""

    def __init__(
        self, uid: str, seed: int, lines: int = 0, long_line: int = 0, max_iter: int = 10
    ) -> None:
        super().__init__(uid, seed, max_iter=max_iter)
        self.lines = lines
        self.long_line = long_line

    def start_environment(self) -> EnvironmentBaseline:
        out = sys.stdout
        for index in range(self.lines):
            out.write(f"chatty line {index}\n")
        piece = "x" * 1_000_000
        for start in range(0, self.long_line, len(piece)):
            out.write(piece[: self.long_line - start])
        out.write("\nend\n")
        out.flush()
        return super().start_environment()


class PatientSenderEnvironment(DummyEnvironment):
    """Makes its governor's store sink wait `pause` seconds before it resends a batch the
    store refused (as after a long spell of refusals), from the first refusal on."""

    def __init__(self, uid: str, seed: int, pause: float = 30.0, max_iter: int = 10) -> None:
        from palaestrio.store import delivery

        super().__init__(uid, seed, max_iter=max_iter)
        delivery.FIRST_RETRY_PAUSE = delivery.MAX_RETRY_PAUSE = pause
