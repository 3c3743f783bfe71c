"""The status lifecycle of a run instance, as a pure function.

    scheduled -> running -> finished | error | cancelled

Each transition happens at most once; the event's own time is recorded (`started_at`
for running, `ended_at` and for error/cancelled `status_reason` for the terminal ones).
Events the store cannot apply as a transition change nothing:

- a duplicate (the instance already has that status);
- anything after a terminal status: the first terminal event is final (a governor that
  reported `finished` and then exits non-zero stays `finished`);
- `running` or `scheduled` arriving after a later status.

A terminal event straight after `scheduled` is applied (the run ended before it ever
ran: it failed to start, or was cancelled while queued); `started_at` then stays NULL,
because the run was never seen running.
"""

from __future__ import annotations

from palaestrio.status import RunStatus, may_follow


def next_status(current: RunStatus, event: RunStatus) -> RunStatus | None:
    """The status after `event` arrives at an instance in `current`, or None for no change."""
    if event is RunStatus.STARTING:
        raise ValueError("'starting' is the executor's own status; the store never has it")
    if event is current or event is RunStatus.SCHEDULED or not may_follow(current, event):
        return None
    return event
