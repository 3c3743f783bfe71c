"""Runs as the API shows them: the store's rows (runs of this server and runs started
from the command line alike), with the executor's live fields for the runs this server
executes, and runs it has scheduled but not yet stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import sqlalchemy as sa
import trio

from palaestrio.status import RunStatus
from palaestrio.store.queries import RunSummary, run_page, stored_uids

from .events import EventHub

if TYPE_CHECKING:
    from palaestrio.executor import ExperimentRunRuntimeInformation


def summary_row(summary: RunSummary, hub: EventHub) -> dict[str, Any]:
    row: dict[str, Any] = msgspec.to_builtins(summary)
    info = hub.infos.get(summary.instance_uid)
    row["live"] = hub.live(summary.instance_uid)
    row["cancellable"] = info is not None and not info.is_done
    if info is not None and info.status != summary.status:
        # The executor knows first; the store follows within moments.
        row["status"], row["reason"] = str(info.status), info.reason or summary.reason
    return row


def unstored_row(info: ExperimentRunRuntimeInformation, hub: EventHub) -> dict[str, Any]:
    """A run scheduled here whose `scheduled` status is not in the store yet."""
    run = info.experiment_run
    return {
        "run_uid": run.uid,
        "instance_uid": info.instance_uid,
        "experiment_uid": run.experiment_uid or run.uid,
        "status": str(info.status),
        "scheduled": None,
        "started": None,
        "ended": None,
        "reason": info.reason,
        "phases": 0,
        "episodes": 0,
        "steps": info.steps,
        "live": hub.live(info.instance_uid),
        "cancellable": not info.is_done,
    }


async def run_rows(
    engine: sa.Engine,
    hub: EventHub,
    *,
    status: str | None,
    experiment: str | None,
    offset: int,
    limit: int,
) -> dict[str, Any]:
    """Newest first, `limit` rows from `offset`, with the total that match. Runs this
    server scheduled a moment ago and the store has not registered yet come first."""
    waiting = [
        info
        for info in hub.infos.values()
        if info.status == RunStatus.SCHEDULED
        and (status is None or status == RunStatus.SCHEDULED)
        and (
            experiment is None
            or (info.experiment_run.experiment_uid or info.experiment_run.uid) == experiment
        )
    ]

    def query() -> tuple[int, list[RunSummary], set[str]]:
        stored = stored_uids(engine, [info.instance_uid for info in waiting])
        unstored_count = len(waiting) - len(stored)
        total, page = run_page(
            engine,
            offset=max(0, offset - unstored_count),
            limit=limit,
            experiment_uid=experiment,
            status=status,
        )
        return total, page, stored

    total, page, stored = await trio.to_thread.run_sync(query)
    unstored = [info for info in reversed(waiting) if info.instance_uid not in stored]
    rows = [unstored_row(info, hub) for info in unstored[offset : offset + limit]]
    rows += [summary_row(summary, hub) for summary in page[: limit - len(rows)]]
    return {"total": total + len(unstored), "offset": offset, "limit": limit, "runs": rows}
