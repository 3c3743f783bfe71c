"""How the commands print: the console on stdout, tables, times and durations."""

from __future__ import annotations

import os
from datetime import datetime

from rich import box
from rich.console import Console
from rich.table import Table


def stdout_console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Logs and pipes: wide enough that uids are not folded.
        console = Console(highlight=False, width=200)
    return console


def table() -> Table:
    """Tables without vertical rules: readable in logs, and cells split on whitespace."""
    return Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def local_time(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"
