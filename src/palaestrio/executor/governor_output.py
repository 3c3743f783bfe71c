"""A governor's output: re-logged rate-limited (`GovernorLines`), and kept whole in
the run's log file (`RunLog`), written in a worker thread.

Writing happens in `trio.to_thread`, chunk by chunk as the pipe delivers them: the event
loop never waits on the disk, a slow disk slows only the chatty governor (its pipe
fills), and nothing is buffered here beyond the chunk in hand (a 100 MB line without a
newline goes to the file as it arrives). At `max_bytes` the file ends with a line saying
how much more was not kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import trio

log = logging.getLogger("palaestrio.executor")
governor_log = logging.getLogger("palaestrio.governor")


class RunLog:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.written = 0
        self.dropped = 0
        self._file: BinaryIO | None = None
        self._failed = False

    async def write(self, chunk: bytes | bytearray) -> None:
        if self._failed:
            return
        room = self.max_bytes - self.written
        kept = bytes(chunk[: max(room, 0)])
        self.dropped += len(chunk) - len(kept)
        if kept or self._file is None:
            await trio.to_thread.run_sync(self._write, kept)

    def _write(self, data: bytes) -> None:
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("ab")
            self._file.write(data)
            self._file.flush()  # so that `close`, in the event loop, has nothing to write
            self.written += len(data)
        except OSError as error:
            # The run goes on: its log is a convenience, its records are what counts.
            self._failed = True
            log.warning("cannot write the run log %s: %s", self.path, error)

    def close(self) -> None:
        """Ends the file (with the truncation mark if any); quick, no fsync."""
        if self._file is None:
            return
        try:
            if self.dropped:
                self._file.write(
                    f"\n[palaestrio: log truncated at {self.max_bytes} bytes; "
                    f"{self.dropped} more bytes not kept]\n".encode()
                )
            self._file.close()
        except OSError as error:
            log.warning("cannot close the run log %s: %s", self.path, error)
        self._file = None


class GovernorLines:
    """Re-logs a governor's output lines under `palaestrio.governor`, at most `rate`
    lines a second (bursts of `burst`): a component printing megabytes a second must
    not slow its run down by the executor's logging. What is not shown is counted and
    said with the next line shown. The output goes whole to `run_log`, if given."""

    def __init__(
        self,
        run_uid: str,
        run_log: RunLog | None = None,
        rate: float = 200.0,
        burst: float = 1000.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_uid = run_uid
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.last = clock()
        self.dropped = 0
        self.run_log = run_log

    async def keep(self, chunk: bytes | bytearray) -> None:
        if self.run_log is not None:
            await self.run_log.write(chunk)

    def close(self) -> None:
        if self.run_log is not None:
            self.run_log.close()

    def __call__(self, line: str) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            self.dropped += 1
            return
        self.tokens -= 1
        if self.dropped:
            governor_log.warning(
                "[%s] %d lines of output not shown (more than %g lines/s)",
                self.run_uid,
                self.dropped,
                self.rate,
            )
            self.dropped = 0
        forward_governor_line(self.run_uid, line)


def forward_governor_line(run_uid: str, line: str) -> None:
    level_name, _, rest = line.partition(" ")
    level = logging.getLevelName(level_name)
    if isinstance(level, int):
        # governor_log names itself already; other loggers' names stay.
        rest = rest.removeprefix(f"{governor_log.name}: ")
        governor_log.log(level, "[%s] %s", run_uid, rest)
    elif line.strip():
        governor_log.warning("[%s] %s", run_uid, line)
