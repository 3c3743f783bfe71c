"""What a person watching `palaestrio experiment-start` sees while runs execute.

On a terminal, `LiveProgress` keeps a rich table on screen: one row per run with phase,
episode, steps (of the total, with a percentage, when the run's length is known:
`run_length`), steps/s, ETA, status and elapsed time; ended runs stay, with their steps
and phase. Elsewhere (CI, pipes) `PlainProgress` prints one line per run state change
and a progress line per running run every `PLAIN_INTERVAL` seconds. Both are fed by the executor's
``on_update`` callback (governors' progress messages), never by reading the database.
Log records go through the live view's console (`logs.logging_to`), so they print
above the table instead of through it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
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
from .run_length import expected_steps

if TYPE_CHECKING:
    from palaestrio.executor import ExperimentRunRuntimeInformation

REFRESH_PER_SECOND = 4
"""Redraws of the live table (elapsed time moves on between updates)."""
RATE_WINDOW = 2.0
"""Seconds of progress messages the steps/s column averages over."""
PLAIN_INTERVAL = 10.0
"""Seconds between plain progress lines of a running run."""

STATUS_STYLES: dict[str, str] = {
    RunStatus.SCHEDULED: "dim",
    RunStatus.STARTING: "cyan",
    RunStatus.RUNNING: "bold cyan",
    RunStatus.FINISHED: "green",
    RunStatus.ERROR: "bold red",
    RunStatus.CANCELLED: "yellow",
}


class Progress(Protocol):
    reported: set[str]
    """Instance uids whose reason for ending was printed already (not again, then)."""

    def update(self, info: ExperimentRunRuntimeInformation) -> None: ...

    def showing(self) -> AbstractContextManager[None]: ...


@dataclasses.dataclass
class RunRow:
    """What one row shows; kept per run instance, in the order runs were scheduled."""

    run_uid: str
    total: int | None = None
    """The steps the run will take, if known."""
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

    def of_total(self) -> str:
        """Steps, of the total with a percentage when the total is known."""
        if not self.total:
            return str(self.steps)
        return f"{self.steps}/{self.total} {min(100, 100 * self.steps // self.total)}%"

    def eta(self, now: float) -> float | None:
        """Seconds left at the recent rate, while running with a known total."""
        rate = self.rate(now)
        if self.ended is not None or not self.total or not rate or rate <= 0:
            return None
        return max(0, self.total - self.steps) / rate


class RunTracker:
    """Turns executor updates into `RunRow`s; returns whether the status changed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.rows: dict[str, RunRow] = {}
        self.clock = clock

    def track(self, info: ExperimentRunRuntimeInformation) -> tuple[RunRow, bool]:
        now = self.clock()
        row = self.rows.get(info.instance_uid)
        if row is None:
            row = RunRow(info.experiment_run.uid, total=expected_steps(info.experiment_run))
            self.rows[info.instance_uid] = row
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
        phases = info.experiment_run.phases
        if info.status == RunStatus.FINISHED and phases:
            # The last progress message may be a few steps old; the run is complete.
            last = phases[-1]
            row.phase = f"{last.name} ({len(phases)}/{len(phases)})"
            row.episode = f"{last.episodes}/{last.episodes}"
        elif info.is_done and not row.phase and 0 < info.phases <= len(phases):
            # Ended before any progress message: the phase it reached, from its report.
            row.phase = f"{phases[info.phases - 1].name} ({info.phases}/{len(phases)})"
        row.steps = max(row.steps, info.steps)
        row.samples.append((now, row.steps))
        return row, changed


class LiveProgress:
    """A rich live table on `console` while `showing()`; ended runs stay in it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.tracker = RunTracker()
        self.reported: set[str] = set()  # the table shows no reasons
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
        # Only the phase gives way on a narrow terminal (80 columns); the run's name
        # wraps, the numbers and the status stay whole.
        table.add_column("run", overflow="fold", max_width=32, min_width=10)
        table.add_column("phase", overflow="ellipsis", max_width=24, min_width=5)
        for name in ("episode", "steps", "steps/s", "eta"):
            table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
        table.add_column("status", no_wrap=True, min_width=len(RunStatus.CANCELLED))
        table.add_column("elapsed", justify="right", no_wrap=True, min_width=7)
        with self._lock:
            for row in self.tracker.rows.values():
                rate, eta, elapsed = row.rate(now), row.eta(now), row.elapsed(now)
                table.add_row(
                    row.run_uid,
                    row.phase,
                    row.episode,
                    row.of_total() if row.status != RunStatus.SCHEDULED else "",
                    "" if rate is None else f"{rate:,.0f}",
                    "" if eta is None else format_seconds(eta),
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

    def __init__(
        self,
        stream: IO[str],
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`interval`: seconds between progress lines of a running run (0: none)."""
        self.stream = stream
        self.tracker = RunTracker(clock)
        self.interval = interval
        self.clock = clock
        self.reported: set[str] = set()
        self._last: dict[str, float] = {}
        """When each run's last line was printed."""

    def update(self, info: ExperimentRunRuntimeInformation) -> None:
        row, changed = self.tracker.track(info)
        now = self.clock()
        if info.status == RunStatus.SCHEDULED:
            return
        if changed:
            self._print(info, row, self._status_line(info, row))
            if info.is_done and info.reason and info.status != RunStatus.FINISHED:
                self.reported.add(info.instance_uid)
        elif (
            self.interval > 0
            and info.status == RunStatus.RUNNING
            and now - self._last.get(info.instance_uid, now) >= self.interval
        ):
            self._print(info, row, self._progress_line(row, now))

    def _print(self, info: ExperimentRunRuntimeInformation, row: RunRow, what: str) -> None:
        self._last[info.instance_uid] = self.clock()
        stamp = datetime.now().strftime("%H:%M:%S")
        line = f"{stamp} run {info.experiment_run.uid} ({info.instance_uid[:8]}): {what}"
        print(line, file=self.stream, flush=True)

    def _status_line(self, info: ExperimentRunRuntimeInformation, row: RunRow) -> str:
        line = row.status
        if info.is_done:
            elapsed = row.elapsed(self.clock())
            line += f", {row.steps} steps"
            if elapsed is not None:
                line += f" in {format_seconds(elapsed)}"
            if info.reason and info.status != RunStatus.FINISHED:
                line += f": {info.reason.strip().splitlines()[0]}"
        return line

    @staticmethod
    def _progress_line(row: RunRow, now: float) -> str:
        parts = [row.status, row.phase, f"episode {row.episode}", f"{row.of_total()} steps"]
        rate, eta = row.rate(now), row.eta(now)
        if rate is not None:
            parts.append(f"{rate:,.0f} steps/s")
        if eta is not None:
            parts.append(f"ETA {format_seconds(eta)}")
        return ", ".join(part for part in parts if part)

    @contextmanager
    def showing(self) -> Iterator[None]:
        yield
