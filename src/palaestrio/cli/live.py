"""What a person watching `palaestrio experiment-start` sees while runs execute.

On a terminal, `LiveProgress` keeps a rich table on screen: one row per run with phase,
episode, step, steps/s, status and elapsed time; ended runs stay. Elsewhere (CI, pipes)
`PlainProgress` prints one line per run state change. Both are fed by the executor's
``on_update`` callback (governors' progress messages), never by reading the database.
Log records go through the live view's console (`logs.logging_to`), so they print
above the table instead of through it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import IO, TYPE_CHECKING, Protocol

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from palaestrio.status import RunStatus

from .output import format_seconds

if TYPE_CHECKING:
    from palaestrio.executor import ExperimentRunRuntimeInformation

REFRESH_PER_SECOND = 4
"""Redraws of the live table (elapsed time moves on between updates)."""
RATE_WINDOW = 2.0
"""Seconds of progress messages the steps/s column averages over."""

STATUS_STYLES: dict[str, str] = {
    RunStatus.SCHEDULED: "dim",
    RunStatus.STARTING: "cyan",
    RunStatus.RUNNING: "bold cyan",
    RunStatus.FINISHED: "green",
    RunStatus.ERROR: "bold red",
    RunStatus.CANCELLED: "yellow",
}


class Progress(Protocol):
    def update(self, info: ExperimentRunRuntimeInformation) -> None: ...

    def showing(self) -> AbstractContextManager[None]: ...


@dataclasses.dataclass
class RunRow:
    """What one row shows; kept per run instance, in the order runs were scheduled."""

    run_uid: str
    status: str = ""
    phase: str = ""
    episode: str = ""
    step: int | None = None
    steps: int = 0
    started: float | None = None
    """time.monotonic() when the run started, for elapsed time and steps/s."""
    ended: float | None = None
    reason: str | None = None
    samples: deque[tuple[float, int]] = dataclasses.field(default_factory=lambda: deque(maxlen=64))

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else now) - self.started

    def rate(self, now: float) -> float | None:
        """Steps/s: recent while running, the run's average once it ended."""
        if self.ended is not None:
            elapsed = self.elapsed(now)
            return self.steps / elapsed if elapsed else None
        recent = [(t, s) for t, s in self.samples if now - t <= RATE_WINDOW]
        if len(recent) < 2 or recent[-1][0] <= recent[0][0]:
            return None
        (t0, s0), (t1, s1) = recent[0], recent[-1]
        return (s1 - s0) / (t1 - t0)


class RunTracker:
    """Turns executor updates into `RunRow`s; returns whether the status changed."""

    def __init__(self) -> None:
        self.rows: dict[str, RunRow] = {}

    def track(self, info: ExperimentRunRuntimeInformation) -> tuple[RunRow, bool]:
        now = time.monotonic()
        row = self.rows.get(info.instance_uid)
        if row is None:
            row = self.rows[info.instance_uid] = RunRow(info.experiment_run.uid)
        changed = row.status != info.status
        row.status = info.status
        row.reason = info.reason
        if info.is_running and row.started is None:
            row.started = now
        if info.is_done and row.ended is None:
            row.ended = now
        progress = info.progress
        if progress is not None:
            phases = info.experiment_run.phases
            total = len(phases)
            row.phase = f"{progress.phase_name} ({progress.phase + 1}/{total})"
            episodes = phases[progress.phase].episodes if progress.phase < total else 0
            row.episode = (
                f"{progress.episode + 1}/{episodes}" if episodes else str(progress.episode)
            )
            if progress.phase < total and phases[progress.phase].workers > 1:
                row.episode += f" w{progress.worker}"
            row.step = progress.step
        if info.status == RunStatus.FINISHED and info.experiment_run.phases:
            # The last progress message may be a few steps old; the run is complete.
            phases = info.experiment_run.phases
            last = phases[-1]
            row.phase = f"{last.name} ({len(phases)}/{len(phases)})"
            row.episode = f"{last.episodes}/{last.episodes}"
            row.step = None
        row.steps = max(row.steps, info.steps)
        row.samples.append((now, row.steps))
        return row, changed


class LiveProgress:
    """A rich live table on `console` while `showing()`; ended runs stay in it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.tracker = RunTracker()
        # Rows change in trio's thread and are drawn by rich's refresh thread as well.
        self._lock = threading.Lock()
        self._live: Live | None = None

    def update(self, info: ExperimentRunRuntimeInformation) -> None:
        with self._lock:
            _, changed = self.tracker.track(info)
        if changed and self._live is not None:
            self._live.refresh()

    def render(self, now: float | None = None) -> Table:
        now = time.monotonic() if now is None else now
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        # Only the names give way on a narrow terminal; the numbers stay whole.
        table.add_column("run", overflow="ellipsis", max_width=32, min_width=10)
        table.add_column("phase", overflow="ellipsis", max_width=24, min_width=8)
        for name in ("episode", "step", "steps/s"):
            table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
        table.add_column("status", no_wrap=True, min_width=9)
        table.add_column("elapsed", justify="right", no_wrap=True, min_width=7)
        with self._lock:
            for row in self.tracker.rows.values():
                rate = row.rate(now)
                elapsed = row.elapsed(now)
                table.add_row(
                    row.run_uid,
                    row.phase,
                    row.episode,
                    "" if row.step is None else str(row.step),
                    "" if rate is None else f"{rate:,.0f}",
                    Text(row.status, style=STATUS_STYLES.get(row.status, "")),
                    "" if elapsed is None else format_seconds(elapsed),
                )
        return table

    def __rich__(self) -> Table:
        return self.render()

    @contextmanager
    def showing(self) -> Iterator[None]:
        with Live(
            self, console=self.console, refresh_per_second=REFRESH_PER_SECOND, transient=False
        ) as live:
            self._live = live
            try:
                yield
            finally:
                self._live = None


class PlainProgress:
    """One line per run state change (starting, running, and how it ended), for output
    that is not a terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tracker = RunTracker()

    def update(self, info: ExperimentRunRuntimeInformation) -> None:
        row, changed = self.tracker.track(info)
        if not changed or info.status == RunStatus.SCHEDULED:
            return
        stamp = datetime.now().strftime("%H:%M:%S")
        line = f"{stamp} run {info.experiment_run.uid} ({info.instance_uid[:8]}): {row.status}"
        if info.is_done:
            elapsed = row.elapsed(time.monotonic())
            line += f", {row.steps} steps"
            if elapsed is not None:
                line += f" in {format_seconds(elapsed)}"
            if info.reason and info.status != RunStatus.FINISHED:
                line += f": {info.reason.strip().splitlines()[0]}"
        print(line, file=self.stream, flush=True)

    @contextmanager
    def showing(self) -> Iterator[None]:
        yield
