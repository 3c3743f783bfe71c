"""The SQL behind `series`: per-episode sums of muscle actions, world-state counts per
walltime bucket, episode rows; each only for the episodes not yet cached.

`Since` maps (phase id, worker uid) to the first episode to read: earlier ones are
finished and cached. Each (phase, worker) becomes one index range (agent or environment
ids, worker, episode >= E) of `ux_muscle_actions_agent_worker_episode_step` or
`ux_world_states_environment_episode_step`, so a poll reads the episodes in progress, not
the run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from palaestrio.store import schema
from palaestrio.store.queries import _steps_of_episode

Since = dict[tuple[int, str], int]

_phases = schema.experiment_run_phases
_episodes = schema.experiment_run_episodes
_agents = schema.agents
_actions = schema.muscle_actions
_environments = schema.environments
_world_states = schema.world_states


def agents_of(connection: sa.Connection, phase_ids: list[int]) -> dict[int, tuple[int, str]]:
    """agents.id -> (phase id, agent uid)"""
    rows = connection.execute(
        sa.select(_agents.c.id, _agents.c.experiment_run_phase_id, _agents.c.uid).where(
            _agents.c.experiment_run_phase_id.in_(phase_ids)
        )
    )
    return {row.id: (row.experiment_run_phase_id, row.uid) for row in rows}


def environments_of(
    connection: sa.Connection, phase_ids: list[int]
) -> dict[int, tuple[int, str, str]]:
    """environments.id -> (phase id, worker uid, environment uid)"""
    rows = connection.execute(
        sa.select(
            _environments.c.id,
            _environments.c.experiment_run_phase_id,
            _environments.c.worker_uid,
            _environments.c.uid,
        ).where(_environments.c.experiment_run_phase_id.in_(phase_ids))
    )
    return {row.id: (row.experiment_run_phase_id, row.worker_uid, row.uid) for row in rows}


def episodes(connection: sa.Connection, phase_ids: list[int]) -> Iterator[Any]:
    """(phase id, worker uid, episode, steps, finished) of every episode row."""
    return iter(
        connection.execute(
            sa.select(
                _episodes.c.experiment_run_phase_id,
                _episodes.c.worker_uid,
                _episodes.c.episode,
                _steps_of_episode(),
                _episodes.c.ended_at.is_not(None),
            ).where(_episodes.c.experiment_run_phase_id.in_(phase_ids))
        )
    )


def _ranges(
    members: dict[tuple[int, str], list[int]],
    since: Since,
    id_column: sa.ColumnElement[int],
    episode: sa.ColumnElement[int],
    worker: sa.ColumnElement[str] | None = None,
) -> sa.ColumnElement[bool]:
    """OR over (phase, worker) of: one of its ids, [its worker,] episode >= the first
    uncached."""
    terms = []
    for key, first in since.items():
        ids = members.get(key)
        if ids:
            worker_term = [] if worker is None else [worker == key[1]]
            terms.append(sa.and_(id_column.in_(ids), *worker_term, episode >= first))
    return sa.or_(sa.false(), *terms)


def action_sums(
    connection: sa.Connection, agents: dict[int, tuple[int, str]], since: Since
) -> Iterator[Any]:
    """(agent id, worker uid, episode, objective sum, reward sum, actions) per episode."""
    # An agent acts on every worker of its phase.
    members: dict[tuple[int, str], list[int]] = defaultdict(list)
    for agent_id, (phase_id, _uid) in agents.items():
        for key in since:
            if key[0] == phase_id:
                members[key].append(agent_id)
    where = _ranges(
        members, since, _actions.c.agent_id, _actions.c.episode, _actions.c.rollout_worker_uid
    )
    query = (
        sa.select(
            _actions.c.agent_id,
            _actions.c.rollout_worker_uid,
            _actions.c.episode,
            sa.func.sum(_actions.c.objective),
            sa.func.sum(_reward_sum(connection.dialect)),
            sa.func.count(),
        )
        .where(where)
        .group_by(_actions.c.agent_id, _actions.c.rollout_worker_uid, _actions.c.episode)
    )
    return iter(connection.execute(query))


def _reward_sum(dialect: sa.Dialect) -> sa.ColumnElement[float]:
    """The sum of the numeric values of the muscle action's `rewards` (a JSON object)."""
    if dialect.name == "postgresql":
        sql = (
            "(SELECT coalesce(sum(CAST(value AS float8)), 0)"
            " FROM jsonb_each(muscle_actions.rewards) WHERE jsonb_typeof(value) = 'number')"
        )
    else:
        sql = (
            "(SELECT total(value) FROM json_each(muscle_actions.rewards)"
            " WHERE type IN ('integer', 'real'))"
        )
    return sa.literal_column(sql, sa.Float)


def world_state_counts(
    connection: sa.Connection,
    environments: dict[int, tuple[int, str, str]],
    since: Since,
    start: float,
    width: float,
) -> Iterator[Any]:
    """(environment id, episode, bucket, rows): world states per `width` seconds of
    walltime from `start` (epoch seconds)."""
    members: dict[tuple[int, str], list[int]] = defaultdict(list)
    for environment_id, (phase_id, worker, _uid) in environments.items():
        members[phase_id, worker].append(environment_id)
    where = _ranges(members, since, _world_states.c.environment_id, _world_states.c.episode)
    bucket = _bucket(connection.dialect, start, width).label("bucket")
    query = (
        sa.select(_world_states.c.environment_id, _world_states.c.episode, bucket, sa.func.count())
        .where(where)
        .group_by(_world_states.c.environment_id, _world_states.c.episode, bucket)
    )
    return iter(connection.execute(query))


def _bucket(dialect: sa.Dialect, start: float, width: float) -> sa.ColumnElement[Any]:
    """Bucket number of a world state's walltime (`start`: epoch seconds of bucket 0)."""
    walltime = _world_states.c.walltime
    if dialect.name == "postgresql":
        seconds = sa.cast(sa.extract("epoch", walltime), sa.Float)
        return sa.func.floor((seconds - start) / width)
    # SQLite stores UTC text; julianday reads it (2440587.5: the Julian day of 1970-01-01).
    epoch = (sa.func.julianday(walltime) - 2440587.5) * 86400.0
    return sa.cast((epoch - start) / width, sa.Integer)
