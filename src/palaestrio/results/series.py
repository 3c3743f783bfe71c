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

Everything is aggregated in SQL (`aggregates`). A finished episode never changes, so a
`SeriesCache` passed in keeps its aggregates and later calls read only the episodes in
progress: a page polling a run every second pays for the whole run once. Lists are
columnar (one list per quantity), cheap to encode as JSON (`msgspec.json`).
"""

from __future__ import annotations

import datetime
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from typing import Any

import msgspec
import sqlalchemy as sa

from palaestrio.status import RunStatus

from . import aggregates
from .runs import RunInstance, find_instance, phases_of

MAX_BUCKETS = 120
"""Throughput buckets at most: enough for a curve, few enough to poll."""
BUCKET_WIDTHS = (0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
FINE_BUCKET = 0.25
"""Throughput is counted (and cached) in buckets this wide, then summed into wider ones
(every width is a multiple of it)."""


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


class _Cached:
    """The aggregates of one run instance's finished episodes."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.since: aggregates.Since = {}
        """(phase id, worker) -> first episode not cached (all before it are)."""
        self.sums: dict[tuple[int, str, str], list[_Sums]] = defaultdict(list)
        """(phase id, agent, worker) -> (episode, objective, reward, actions), finished."""
        self.fine: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        """phase id -> fine bucket -> world states of finished episodes."""


_Sums = tuple[int, float, float, int]


class SeriesCache:
    """Keeps finished episodes' aggregates between `episode_series` calls (one per web
    server, say), for the `capacity` run instances asked for last."""

    def __init__(self, capacity: int = 64) -> None:
        self._capacity = capacity
        self._instances: OrderedDict[str, _Cached] = OrderedDict()

    def get(self, instance: RunInstance) -> _Cached:
        start = instance.started.timestamp() if instance.started is not None else 0.0
        cached = self._instances.pop(instance.instance_uid, None)
        if cached is None or cached.start != start:
            cached = _Cached(start)
        self._instances[instance.instance_uid] = cached
        while len(self._instances) > self._capacity:
            self._instances.popitem(last=False)
        return cached


def episode_series(engine: sa.Engine, run: str, cache: SeriesCache | None = None) -> RunSeries:
    """The series of run instance `run` (an instance uid, a run uid: its latest instance,
    or a unique short instance uid). Raises `UnknownRun` / `AmbiguousRun`.

    With `cache`, finished episodes are read once (see `SeriesCache`)."""
    with engine.connect() as connection:
        instance = find_instance(connection, run)
        phases = phases_of(connection, instance)
        cached = (cache or SeriesCache()).get(instance)
        phase_ids = [phase.id for phase in phases]
        environments = aggregates.environments_of(connection, phase_ids)
        agents = aggregates.agents_of(connection, phase_ids)
        for phase_id, worker, _uid in environments.values():
            cached.since.setdefault((phase_id, worker), 0)
        # Episodes first: one read finished here has all its steps stored already.
        lengths, finished = _episode_lengths(aggregates.episodes(connection, phase_ids))
        since = dict(cached.since)
        _advance(cached.since, finished)
        sums = _agent_sums(connection, cached, agents, since)
        width, throughput = _throughput(connection, instance, cached, environments, since)
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
                agents=sums.get(phase.id, []),
                episode_lengths=lengths.get(phase.id, []),
                throughput=throughput.get(phase.id, empty),
            )
            for phase in phases
        ],
    )


def _worker_order(worker: str) -> tuple[int, str]:
    """Workers "0", "1", ..., "10" in numeric order (they are stored as text)."""
    return (int(worker), "") if worker.isdigit() else (-1, worker)


def _advance(since: aggregates.Since, episodes: dict[tuple[int, str], dict[int, bool]]) -> None:
    """Moves each (phase, worker)'s first uncached episode to its first unfinished one
    (past the last when all are finished)."""
    for key, first in since.items():
        finished = episodes.get(key, {})
        unfinished = [episode for episode, ended in finished.items() if not ended]
        since[key] = max(first, min(unfinished, default=max(finished, default=first - 1) + 1))


def _is_final(since: aggregates.Since, phase_id: int, worker: str, episode: int) -> bool:
    return episode < since.get((phase_id, worker), 0)


def _episode_lengths(
    rows: Iterator[Any],
) -> tuple[dict[int, list[EpisodeLengths]], dict[tuple[int, str], dict[int, bool]]]:
    columns: dict[tuple[int, str], list[tuple[int, int, bool]]] = defaultdict(list)
    finished: dict[tuple[int, str], dict[int, bool]] = defaultdict(dict)
    for phase_id, worker, episode, steps, ended in rows:
        columns[phase_id, worker].append((episode, int(steps or 0), bool(ended)))
        finished[phase_id, worker][episode] = bool(ended)
    lengths: dict[int, list[EpisodeLengths]] = defaultdict(list)
    for (phase_id, worker), entries in sorted(
        columns.items(), key=lambda item: (item[0][0], _worker_order(item[0][1]))
    ):
        entries.sort()
        lengths[phase_id].append(
            EpisodeLengths(
                worker=worker,
                episode=[entry[0] for entry in entries],
                steps=[entry[1] for entry in entries],
                finished=[entry[2] for entry in entries],
            )
        )
    return lengths, finished


def _agent_sums(
    connection: sa.Connection,
    cached: _Cached,
    agents: dict[int, tuple[int, str]],
    since: aggregates.Since,
) -> dict[int, list[AgentSeries]]:
    columns: dict[tuple[int, str, str], list[_Sums]] = defaultdict(list)
    for key, entries in cached.sums.items():
        columns[key].extend(entries)
    for agent_id, worker, episode, objective, reward, actions in aggregates.action_sums(
        connection, agents, since
    ):
        phase_id, agent = agents[agent_id]
        entry = (episode, float(objective or 0.0), float(reward or 0.0), int(actions))
        columns[phase_id, agent, worker].append(entry)
        if _is_final(cached.since, phase_id, worker, episode):
            cached.sums[phase_id, agent, worker].append(entry)
    series: dict[int, list[AgentSeries]] = defaultdict(list)
    for (phase_id, agent, worker), entries in sorted(
        columns.items(), key=lambda item: (item[0][0], item[0][1], _worker_order(item[0][2]))
    ):
        entries.sort()
        series[phase_id].append(
            AgentSeries(
                agent=agent,
                worker=worker,
                episode=[entry[0] for entry in entries],
                objective=[entry[1] for entry in entries],
                reward=[entry[2] for entry in entries],
                actions=[entry[3] for entry in entries],
            )
        )
    return series


def bucket_width(seconds: float) -> float:
    """The narrowest of `BUCKET_WIDTHS` that splits `seconds` into at most `MAX_BUCKETS`."""
    for width in BUCKET_WIDTHS:
        if seconds <= width * MAX_BUCKETS:
            return float(width)
    return float(-(-seconds // MAX_BUCKETS))


def _throughput(
    connection: sa.Connection,
    instance: RunInstance,
    cached: _Cached,
    environments: dict[int, tuple[int, str, str]],
    since: aggregates.Since,
) -> tuple[float, dict[int, Throughput]]:
    if instance.started is None:
        return float(BUCKET_WIDTHS[0]), {}
    start = cached.start
    end = instance.ended.timestamp() if instance.ended is not None else time.time()
    width = bucket_width(max(end - start, 0.0))
    fine: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for phase_id, buckets in cached.fine.items():
        fine[phase_id].update(buckets)
    rows = aggregates.world_state_counts(connection, environments, since, start, FINE_BUCKET)
    for environment_id, episode, bucket, count in rows:
        phase_id, worker, _uid = environments[environment_id]
        # Walltimes a little before the recorded start (clocks) count in bucket 0.
        index = max(int(bucket), 0)
        fine[phase_id][index] += count
        if _is_final(cached.since, phase_id, worker, episode):
            cached.fine[phase_id][index] += count
    environment_uids: dict[int, set[str]] = defaultdict(set)
    for phase_id, _worker, uid in environments.values():
        environment_uids[phase_id].add(uid)
    series = {}
    for phase_id, buckets in fine.items():
        coarse: dict[int, int] = defaultdict(int)
        for index, count in buckets.items():
            coarse[int(index * FINE_BUCKET // width)] += count
        # A step is one world state per environment; the last bucket may be cut short.
        per_step = max(len(environment_uids[phase_id]), 1)
        indexes = sorted(coarse)
        series[phase_id] = Throughput(
            seconds=[index * width for index in indexes],
            steps_per_second=[
                coarse[index] / per_step / min(width, max(end - start - index * width, 1e-3))
                for index in indexes
            ],
        )
    return width, series
