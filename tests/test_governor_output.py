"""A chatty or careless governor: its output cannot flood the executor's memory or
log (issue 16, item 7)."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from palaestrio.executor.governor_output import GovernorLines
from palaestrio.executor.launch import MAX_LINE_BYTES, _OutputTail


async def test_a_huge_line_without_newline_is_cut_and_the_next_lines_are_whole() -> None:
    lines: list[str] = []
    tail = _OutputTail(lines.append)
    send, receive = trio.testing.memory_stream_one_way_pair()
    chunk = b"x" * 1_000_000
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tail.drain, receive)
        for _ in range(20):  # 20 MB, no newline
            await send.send_all(chunk)
        await send.send_all(b"\nsecond line\nthird")
        await send.aclose()
    assert len(lines) == 3
    assert lines[0].startswith("x" * MAX_LINE_BYTES + " [...")
    assert f"{20_000_000 - MAX_LINE_BYTES} more bytes" in lines[0]
    assert lines[1:] == ["second line", "third"]
    assert len(tail.buffer) <= 4096 and tail.tail().endswith("third")
    assert len(tail.line) == 0


def test_governor_lines_are_rate_limited_and_the_drop_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    forward = GovernorLines("run", rate=10, burst=5, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="palaestrio.governor"):
        for index in range(100):  # all at one instant: only the burst passes
            forward(f"INFO line {index}")
        now[0] += 1.0  # refilled, up to the burst
        for index in range(100, 120):
            forward(f"INFO line {index}")
    shown = [r.getMessage() for r in caplog.records]
    assert shown[:5] == [f"[run] line {i}" for i in range(5)]
    assert shown[5] == "[run] 95 lines of output not shown (more than 10 lines/s)"
    assert shown[6:] == [f"[run] line {i}" for i in range(100, 105)]
