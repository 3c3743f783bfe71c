"""Runs as the API shows them: the store's rows (runs of this server and runs started
from the command line alike), with the executor's live fields for the runs this server
executes, and runs it has scheduled but not yet stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import sqlalchemy as sa
import trio

from palaestrio.store.queries import RunSummary, list_runs

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
    """Newest first, `limit` rows from `offset`, with the total that match."""
    summaries = await trio.to_thread.run_sync(
        lambda: list_runs(engine, experiment_uid=experiment, status=status)
    )
    stored = {summary.instance_uid for summary in summaries}
    rows = [summary_row(summary, hub) for summary in summaries]
    for info in hub.infos.values():
        run = info.experiment_run
        if (
            info.instance_uid not in stored
            and (status is None or str(info.status) == status)
            and (experiment is None or (run.experiment_uid or run.uid) == experiment)
        ):
            rows.append(unstored_row(info, hub))
    rows.reverse()
    return {
        "total": len(rows),
        "offset": offset,
        "limit": limit,
        "runs": rows[offset : offset + limit],
    }
