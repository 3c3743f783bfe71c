"""How long the store keeps trying writes the database refuses before it gives up.

A write that fails for a reason that may pass (a full disk, a read-only file system, a
lock held too long) is answered "retryable" and the sender tries again. Those failures
are counted from the first one after the last successful write: past `retries` failures
or `seconds` seconds the store gives up for good (`palaestrio.store.errors.StoreFailed`).
During shutdown (`hurry`) the first such failure is the last: nobody should wait on a
database that refuses writes to stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEFAULT_WRITE_RETRIES = 20
DEFAULT_WRITE_RETRY_SECONDS = 30.0


class WriteBudget:
    def __init__(
        self,
        retries: int = DEFAULT_WRITE_RETRIES,
        seconds: float = DEFAULT_WRITE_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retries < 0 or seconds < 0:
            raise ValueError(f"write retries and seconds must be >= 0, not {retries}, {seconds}")
        self.retries = retries
        self.seconds = seconds
        self._clock = clock
        self._failures = 0
        self._since: float | None = None
        self.hurried = False

    def succeeded(self) -> None:
        self._failures, self._since = 0, None

    def failed(self) -> str | None:
        """Counts a failure; returns why the store must give up now, or None."""
        now = self._clock()
        if self._since is None:
            self._since = now
        self._failures += 1
        if self.hurried:
            return "it failed while the executor was stopping"
        if self._failures > self.retries:
            return f"it failed {self._failures} times in a row"
        if now - self._since >= self.seconds:
            return f"writes failed for {now - self._since:.1f} s"
        return None

    def hurry(self) -> None:
        self.hurried = True
