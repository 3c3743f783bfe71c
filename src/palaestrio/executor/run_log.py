"""A run's governor output kept whole in its log file, written in a worker thread.

Writing happens in `trio.to_thread`, chunk by chunk as the pipe delivers them: the event
loop never waits on the disk, a slow disk slows only the chatty governor (its pipe
fills), and nothing is buffered here beyond the chunk in hand (a 100 MB line without a
newline goes to the file as it arrives). At `max_bytes` the file ends with a line saying
how much more was not kept.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO

import trio

log = logging.getLogger("palaestrio.executor")


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
