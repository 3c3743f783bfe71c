"""A run's status, one enum for the executor, the store, the CLI and the wire."""

from __future__ import annotations

import enum


class RunStatus(enum.StrEnum):
    """Where a run instance is. The executor is the only writer of it.

    ``STARTING`` lives only in the executor (a governor is being launched); the store
    goes from ``SCHEDULED`` to ``RUNNING`` and then to one terminal status, once.
    """

    SCHEDULED = "scheduled"
    STARTING = "starting"
    RUNNING = "running"
    FINISHED = "finished"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_active(self) -> bool:
        return self in (RunStatus.STARTING, RunStatus.RUNNING)


TERMINAL = frozenset({RunStatus.FINISHED, RunStatus.ERROR, RunStatus.CANCELLED})

EXECUTOR_LOST = "executor lost"
"""The reason stored for a run whose executor died without ending it."""


def may_follow(current: RunStatus, new: RunStatus) -> bool:
    """The transition rule: forward only, and a terminal status is final."""
    if current.is_terminal:
        return False
    order = (RunStatus.SCHEDULED, RunStatus.STARTING, RunStatus.RUNNING)
    if new.is_terminal:
        return True
    return order.index(new) > order.index(current)
