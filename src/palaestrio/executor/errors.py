"""The executor's errors."""

from __future__ import annotations

import signal
from collections.abc import Sequence

from palaestrio.errors import PalaestrioError


class ExecutorError(PalaestrioError, RuntimeError):
    """Base of the executor's errors."""


class UnknownRunError(ExecutorError, LookupError):
    def __init__(self, run_id: str, known: Sequence[str]) -> None:
        shown = ", ".join(known) or "none"
        super().__init__(f"no run {run_id!r} in this executor (runs: {shown})")
        self.run_id = run_id


class ExecutorInterrupted(ExecutorError):
    """A signal stopped the executor; every run it had was cancelled and stored."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
