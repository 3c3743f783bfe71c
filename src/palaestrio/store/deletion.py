"""`palaestrio runs delete`: run instances and everything stored for them removed.

Deleting an instance cascades to its phases, episodes, environments, agents, world
states, muscle actions and brain states; a run left without instances and an
experiment left without runs go too. A run still `scheduled` or `running` (its
executor alive) is refused: its executor would go on writing to it.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.exc

from palaestrio.status import RunStatus
from palaestrio.store import schema
from palaestrio.store.engine import describe, refused_write
from palaestrio.store.errors import StoreError
from palaestrio.store.queries import RunSummary

_instances = schema.experiment_run_instances
_runs = schema.experiment_runs
_experiments = schema.experiments


class RunStillLive(StoreError):
    """A run asked to be deleted is still scheduled or running."""


def delete_runs(engine: sa.Engine, runs: list[RunSummary]) -> int:
    """Deletes the run instances `runs` (as `list_runs` gives them); returns how many.

    Raises `RunStillLive` (deleting none) if any is not in a terminal status, and
    `StoreError` when the store refuses (naming it and "permission denied").
    """
    live = [run for run in runs if not RunStatus(run.status).is_terminal]
    if live:
        names = ", ".join(f"{run.instance_uid[:8]} ({run.run_uid}, {run.status})" for run in live)
        raise RunStillLive(f"runs still live, stop them first: {names}")
    uids = [run.instance_uid for run in runs]
    try:
        with engine.begin() as connection:
            deleted = connection.execute(sa.delete(_instances).where(_instances.c.uid.in_(uids)))
            orphans = ~sa.exists().where(_instances.c.experiment_run_id == _runs.c.id)
            connection.execute(sa.delete(_runs).where(orphans))
            empty = ~sa.exists().where(_runs.c.experiment_id == _experiments.c.id)
            connection.execute(sa.delete(_experiments).where(empty))
    except sqlalchemy.exc.DBAPIError as error:
        if refused_write(error):
            raise StoreError(
                f"store {describe(engine.url)} is read-only here: permission denied"
            ) from error
        raise StoreError(f"cannot delete runs: {error.orig or error}") from error
    return int(deleted.rowcount)
