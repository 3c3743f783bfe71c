"""A run's brain dumps, for download: listed by id, served from the path the store
recorded (never a path a request names)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import sqlalchemy as sa

from palaestrio.results.runs import find_instance
from palaestrio.store import schema

_brains = schema.brain_states
_agents = schema.agents
_phases = schema.experiment_run_phases


class BrainDump(msgspec.Struct, frozen=True):
    id: int
    agent: str
    phase: int
    worker: str | None
    tag: str | None
    bytes: int | None
    """The file's size; None when it is gone."""


def brain_dumps(engine: sa.Engine, run: str) -> list[BrainDump]:
    with engine.connect() as connection:
        instance = find_instance(connection, run)
        rows = connection.execute(
            sa.select(_brains.c.id, _agents.c.uid, _brains.c.phase, _brains.c.worker_uid)
            .add_columns(_brains.c.tag, _brains.c.path)
            .select_from(
                _brains.join(_agents, _agents.c.id == _brains.c.agent_id).join(
                    _phases, _phases.c.id == _agents.c.experiment_run_phase_id
                )
            )
            .where(_phases.c.experiment_run_instance_id == instance.id)
            .order_by(_brains.c.id)
        ).all()
    return [
        BrainDump(row.id, row.uid, row.phase, row.worker_uid, row.tag, _size(row.path))
        for row in rows
    ]


def brain_dump_path(engine: sa.Engine, dump_id: int) -> Path | None:
    """The file of brain dump `dump_id`, if the store has one and it exists."""
    with engine.connect() as connection:
        path = connection.execute(
            sa.select(_brains.c.path).where(_brains.c.id == dump_id)
        ).scalar_one_or_none()
    return Path(path) if path and Path(path).is_file() else None


def _size(path: str | None) -> int | None:
    try:
        return Path(path).stat().st_size if path else None
    except OSError:
        return None
