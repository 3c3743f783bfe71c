"""A run's per-episode series: what `runs plot` draws and the web page's run page plots.

`episode_series(engine, run)` gives, per phase, per agent and worker, per episode:

- `objective`: the **sum** over the episode's steps of the agent's objective (the
  episode's return, as a learning curve plots it);
- `reward`: the **sum** over the episode's steps of the numeric rewards the agent
  received (all environments' rewards, summed; non-numeric rewards are left out);
- `actions`: the steps the agent acted in, so `objective[i] / actions[i]` is the mean
  per step;

per worker and episode the episode length in steps (an episode in progress: the steps
stored so far, `finished` False); and the run's throughput: steps per second (all
workers together, each step counted once however many environments it has) in buckets
of `bucket_seconds` of walltime, time counted from the run's start.

Everything is aggregated in SQL (one query per series for all phases, over the
indexes `ux_muscle_actions_agent_worker_episode_step` and
`ux_world_states_environment_episode_step`), so a page may poll it while a run executes.
Lists are columnar (one list per quantity), cheap to encode as JSON (`msgspec.json`).
"""

from __future__ import annotations

import datetime
import time
from collections import defaultdict
from typing import Any

import msgspec
import sqlalchemy as sa

from palaestrio.status import RunStatus
from palaestrio.store import schema
from palaestrio.store.queries import _steps_of_episode

from .runs import RunInstance, find_instance, phases_of

_phases = schema.experiment_run_phases
_episodes = schema.experiment_run_episodes
_agents = schema.agents
_actions = schema.muscle_actions
_environments = schema.environments
_world_states = schema.world_states

MAX_BUCKETS = 120
"""Throughput buckets at most: enough for a curve, few enough to poll."""
BUCKET_WIDTHS = (0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


class AgentSeries(msgspec.Struct, frozen=True):
    """One agent on one worker: one entry per episode, in episode order."""

    agent: str
    worker: str
    episode: list[int]
    objective: list[float]
    """Sum of the objective over the episode's steps."""
    reward: list[float]
    """Sum over the episode's steps of the numeric rewards the agent received."""
    actions: list[int]
    """Steps the agent acted in (divide a sum by it for the mean per step)."""


class EpisodeLengths(msgspec.Struct, frozen=True):
    """One worker's episodes, in order."""

    worker: str
    episode: list[int]
    steps: list[int]
    finished: list[bool]
    """False for an episode in progress (its steps so far)."""


class Throughput(msgspec.Struct, frozen=True):
    seconds: list[float]
    """Start of each bucket, seconds since the run started."""
    steps_per_second: list[float]


class PhaseSeries(msgspec.Struct, frozen=True):
    number: int
    name: str
    mode: str | None
    agents: list[AgentSeries]
    episode_lengths: list[EpisodeLengths]
    throughput: Throughput


class RunSeries(msgspec.Struct, frozen=True):
    run_uid: str
    instance_uid: str
    experiment_uid: str
    status: RunStatus
    started: datetime.datetime | None
    ended: datetime.datetime | None
    bucket_seconds: float
    """Width of the throughput buckets."""
    phases: list[PhaseSeries]


def episode_series(engine: sa.Engine, run: str) -> RunSeries:
    """The series of run instance `run` (an instance uid, a run uid: its latest instance,
    or a unique short instance uid). Raises `UnknownRun` / `AmbiguousRun`."""
    with engine.connect() as connection:
        instance = find_instance(connection, run)
        phases = phases_of(connection, instance)
        agents = _agent_series(connection, instance)
        lengths = _episode_lengths(connection, instance)
        width, throughput = _throughput(connection, instance)
    empty = Throughput(seconds=[], steps_per_second=[])
    return RunSeries(
        run_uid=instance.run_uid,
        instance_uid=instance.instance_uid,
        experiment_uid=instance.experiment_uid,
        status=instance.status,
        started=instance.started,
        ended=instance.ended,
        bucket_seconds=width,
        phases=[
            PhaseSeries(
                number=phase.number,
                name=phase.name,
                mode=phase.mode,
                agents=agents.get(phase.number, []),
                episode_lengths=lengths.get(phase.number, []),
                throughput=throughput.get(phase.number, empty),
            )
            for phase in phases
        ],
    )


def _worker_order(worker: str) -> tuple[int, str]:
    """Workers "0", "1", ..., "10" in numeric order (they are stored as text)."""
    return (int(worker), "") if worker.isdigit() else (-1, worker)


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


def _agent_series(connection: sa.Connection, instance: RunInstance) -> dict[int, list[AgentSeries]]:
    query = (
        sa.select(
            _phases.c.number,
            _agents.c.uid,
            _actions.c.rollout_worker_uid,
            _actions.c.episode,
            sa.func.sum(_actions.c.objective),
            sa.func.sum(_reward_sum(connection.dialect)),
            sa.func.count(),
        )
        .select_from(
            _actions.join(_agents, _agents.c.id == _actions.c.agent_id).join(
                _phases, _phases.c.id == _agents.c.experiment_run_phase_id
            )
        )
        .where(_phases.c.experiment_run_instance_id == instance.id)
        .group_by(
            _phases.c.number, _agents.c.uid, _actions.c.rollout_worker_uid, _actions.c.episode
        )
    )
    columns: dict[tuple[int, str, str], list[tuple[int, float, float, int]]] = defaultdict(list)
    for number, agent, worker, episode, objective, reward, actions in connection.execute(query):
        columns[number, agent, worker].append(
            (episode, float(objective or 0.0), float(reward or 0.0), actions)
        )
    series: dict[int, list[AgentSeries]] = defaultdict(list)
    for (number, agent, worker), rows in sorted(
        columns.items(), key=lambda item: (item[0][0], item[0][1], _worker_order(item[0][2]))
    ):
        rows.sort()
        series[number].append(
            AgentSeries(
                agent=agent,
                worker=worker,
                episode=[row[0] for row in rows],
                objective=[row[1] for row in rows],
                reward=[row[2] for row in rows],
                actions=[row[3] for row in rows],
            )
        )
    return series


def _episode_lengths(
    connection: sa.Connection, instance: RunInstance
) -> dict[int, list[EpisodeLengths]]:
    query = (
        sa.select(
            _phases.c.number,
            _episodes.c.worker_uid,
            _episodes.c.episode,
            _steps_of_episode(),
            _episodes.c.ended_at.is_not(None),
        )
        .select_from(_episodes.join(_phases, _phases.c.id == _episodes.c.experiment_run_phase_id))
        .where(_phases.c.experiment_run_instance_id == instance.id)
    )
    columns: dict[tuple[int, str], list[tuple[int, int, bool]]] = defaultdict(list)
    for number, worker, episode, steps, finished in connection.execute(query):
        columns[number, worker].append((episode, int(steps or 0), bool(finished)))
    lengths: dict[int, list[EpisodeLengths]] = defaultdict(list)
    for (number, worker), rows in sorted(
        columns.items(), key=lambda item: (item[0][0], _worker_order(item[0][1]))
    ):
        rows.sort()
        lengths[number].append(
            EpisodeLengths(
                worker=worker,
                episode=[row[0] for row in rows],
                steps=[row[1] for row in rows],
                finished=[row[2] for row in rows],
            )
        )
    return lengths


def bucket_width(seconds: float) -> float:
    """The narrowest of `BUCKET_WIDTHS` that splits `seconds` into at most `MAX_BUCKETS`."""
    for width in BUCKET_WIDTHS:
        if seconds <= width * MAX_BUCKETS:
            return float(width)
    return float(-(-seconds // MAX_BUCKETS))


def _bucket(dialect: sa.Dialect, start: float, width: float) -> sa.ColumnElement[Any]:
    """Bucket number of a world state's walltime (`start`: epoch seconds of bucket 0)."""
    walltime = _world_states.c.walltime
    if dialect.name == "postgresql":
        seconds = sa.cast(sa.extract("epoch", walltime), sa.Float)
        return sa.func.floor((seconds - start) / width)
    # SQLite stores UTC text; julianday reads it (2440587.5: the Julian day of 1970-01-01).
    epoch = (sa.func.julianday(walltime) - 2440587.5) * 86400.0
    return sa.cast((epoch - start) / width, sa.Integer)


def _throughput(
    connection: sa.Connection, instance: RunInstance
) -> tuple[float, dict[int, Throughput]]:
    if instance.started is None:
        return float(BUCKET_WIDTHS[0]), {}
    start = instance.started.timestamp()
    end = instance.ended.timestamp() if instance.ended is not None else time.time()
    width = bucket_width(max(end - start, 0.0))
    environment_counts: dict[int, int] = dict(
        connection.execute(
            sa.select(_phases.c.number, sa.func.count(sa.distinct(_environments.c.uid)))
            .select_from(
                _environments.join(_phases, _phases.c.id == _environments.c.experiment_run_phase_id)
            )
            .where(_phases.c.experiment_run_instance_id == instance.id)
            .group_by(_phases.c.number)
        ).all()
    )
    bucket = _bucket(connection.dialect, start, width).label("bucket")
    query = (
        sa.select(_phases.c.number, bucket, sa.func.count())
        .select_from(
            _world_states.join(
                _environments, _environments.c.id == _world_states.c.environment_id
            ).join(_phases, _phases.c.id == _environments.c.experiment_run_phase_id)
        )
        .where(_phases.c.experiment_run_instance_id == instance.id)
        .group_by(_phases.c.number, bucket)
        .order_by(_phases.c.number, bucket)
    )
    # Walltimes a little before the recorded start (clocks) count in bucket 0.
    counts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for number, index, rows in connection.execute(query):
        counts[number][max(int(index), 0)] += rows
    series: dict[int, Throughput] = {}
    for number, buckets in counts.items():
        environments = max(environment_counts.get(number, 1), 1)
        # The last bucket may be cut short by the run's end (or now).
        widths = [min(width, max(end - start - index * width, 1e-3)) for index in buckets]
        series[number] = Throughput(
            seconds=[index * width for index in buckets],
            steps_per_second=[
                rows / environments / seconds
                for rows, seconds in zip(buckets.values(), widths, strict=True)
            ],
        )
    return width, series
