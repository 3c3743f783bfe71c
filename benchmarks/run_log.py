"""Governor output through the executor's reader (issue 16, item 7): ``python
benchmarks/run_log.py``.

A governor's stdout (a pipe, fed here) goes through `_OutputTail` (lines cut at 16 KiB),
`GovernorLines` (re-logged at most 200 lines/s) and `RunLog` (the whole output to the
run's log file, written in a worker thread, one hop per pipe read). Median of 3:

(a) 200 MB of 100-byte lines: MB/s through the reader and into the file;
(b) one 200 MB line without a newline: MB/s, and the process's resident memory growth.

Targets: (a) >= 20 MB/s (twice the 10 MB/s chatty component of issue 16: the reader
keeps up); (b) >= 100 MB/s and < 20 MB growth (the line is never held). The per-line
work (splitting, the rate limiter) dominates (a); the file's thread hops are ~10%.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import trio

from palaestrio.executor.governor_output import GovernorLines, RunLog
from palaestrio.executor.launch import _OutputTail

TOTAL = 200_000_000
CHUNK = 65_536


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def feed(directory: Path, piece: bytes) -> tuple[float, int, int]:
    """Seconds to push TOTAL bytes of `piece` repeated; RSS growth (KiB); file size."""
    path = directory / f"{time.monotonic_ns()}.log"
    lines = GovernorLines("bench", RunLog(path, max_bytes=1 << 40))
    tail = _OutputTail(lines)
    read_end, write_end = os.pipe()  # a real pipe: the writer waits for the reader
    send, receive = trio.lowlevel.FdStream(write_end), trio.lowlevel.FdStream(read_end)
    chunk = (piece * (CHUNK // len(piece) + 1))[:CHUNK]
    before = rss_kib()
    growth = 0
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tail.drain, receive)
        for _ in range(TOTAL // CHUNK):
            await send.send_all(chunk)
            growth = max(growth, rss_kib() - before) if _ % 256 == 0 else growth
        await send.aclose()
    seconds = time.perf_counter() - start
    size = path.stat().st_size
    path.unlink()
    return seconds, growth, size


def main() -> None:
    logging.getLogger("palaestrio.governor").addHandler(logging.NullHandler())
    logging.getLogger("palaestrio.governor").propagate = False
    with tempfile.TemporaryDirectory() as tmp:
        for name, piece, target, memory_target in (
            ("(a) 100-byte lines", b"y" * 99 + b"\n", 20.0, None),
            ("(b) one line, no newline", b"x", 100.0, 20_000),
        ):
            runs = [trio.run(feed, Path(tmp), piece) for _ in range(3)]
            rate = TOTAL / statistics.median(seconds for seconds, _, _ in runs) / 1e6
            growth = max(g for _, g, _ in runs)
            assert all(size >= TOTAL - CHUNK for _, _, size in runs), "bytes missing in the file"
            met = rate >= target and (memory_target is None or growth < memory_target)
            print(
                f"{name}: {rate:.0f} MB/s (target >= {target:.0f}), "
                f"RSS growth {growth / 1024:.1f} MB"
                + ("" if memory_target is None else f" (target < {memory_target / 1024:.0f})")
                + f": {'met' if met else 'missed'}"
            )


if __name__ == "__main__":
    main()
