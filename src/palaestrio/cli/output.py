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


WIDE = 120
"""Consoles at least this wide show whole instance uids; narrower ones the first 8
characters (which `runs show` accepts, as git's short hashes)."""


def instance_id(uid: str, console: Console) -> str:
    from palaestrio.store.messages import SHORT_UID_LENGTH

    return uid if console.width >= WIDE else uid[:SHORT_UID_LENGTH]


def table() -> Table:
    """Tables without vertical rules: readable in logs, and cells split on whitespace."""
    return Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def local_time(value: datetime | None, *, short: bool = False) -> str:
    """Local time; `short` (narrow consoles) without year and seconds."""
    form = "%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S"
    return "-" if value is None else value.astimezone().strftime(form)


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"
