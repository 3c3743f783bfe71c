"""Counting what the broker drops (or requeues), logged as a few lines however much
bad input comes.

The first event after a quiet spell is logged in full (who sent it and what was wrong);
events within the next `interval` seconds are only counted, and one line then sums them
up by kind ("20,000 more message(s) dropped or requeued in the last 10 s: 12,000 bad
header, 8,000 unknown command"). So a flood of garbage costs at most two log lines per
interval, and a single bad message is still explained at once.
"""

from __future__ import annotations

import logging
from collections import Counter

DEFAULT_LOG_INTERVAL = 10.0


class DropLog:
    """Drops by kind: `totals` for ever, and a summary line per `interval` in `logger`."""

    def __init__(self, logger: logging.Logger, interval: float = DEFAULT_LOG_INTERVAL) -> None:
        self._log = logger
        self._interval = interval
        self.totals: Counter[str] = Counter()
        self._pending: Counter[str] = Counter()
        self._window_ends: float | None = None
        """When the current summary window closes; None while no drop is being counted."""

    def drop(self, kind: str, detail: str, now: float) -> None:
        """Counts one message of `kind`; `detail` says what and from whom."""
        self.totals[kind] += 1
        if self._window_ends is None:
            self._log.warning("%s", detail)
            self._window_ends = now + self._interval
        else:
            self._pending[kind] += 1

    def flush(self, now: float) -> None:
        """Logs the summary of a window that has closed by `now`."""
        if self._window_ends is None or now < self._window_ends:
            return
        if self._pending:
            kinds = ", ".join(f"{count:,} {kind}" for kind, count in self._pending.most_common())
            self._log.warning(
                "%s more message(s) dropped or requeued in the last %g s: %s",
                f"{self._pending.total():,}",
                self._interval,
                kinds,
            )
            self._pending.clear()
            # Still busy: the next window starts now, and its drops are summed up too.
            self._window_ends = now + self._interval
        else:
            self._window_ends = None
