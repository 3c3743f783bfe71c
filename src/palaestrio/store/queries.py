"""Reading the store: the runs it holds and one run's details (used by the CLI).

Open the database with `palaestrio.store.open_database(uri)` and pass the engine. Times
are timezone-aware UTC datetimes. `steps` counts each step once however many
environments it has: an ended episode reports its own count, an episode in progress
counts the steps recorded so far.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import msgspec
import sqlalchemy as sa

from palaestrio.status import RunStatus
from palaestrio.store import schema
from palaestrio.store.errors import StoreError
from palaestrio.store.messages import SHORT_UID_LENGTH as SHORT_UID_LENGTH
from palaestrio.store.messages import RunSummary as RunSummary


class PhaseSummary(msgspec.Struct, frozen=True):
    number: int
    name: str
    mode: str | None
    workers: int
    episodes: int
    """Episodes recorded (all workers)."""
    steps: int
    started: datetime.datetime | None
    ended: datetime.datetime | None
    environments: list[str]
    agents: list[str]


class RunDetails(msgspec.Struct, frozen=True):
    run: RunSummary
    user: str | None
    document: str | None
    """The experiment file the run was scheduled with."""
    phases: list[PhaseSummary]


class UnknownRun(StoreError):
    """No run instance (or run) has the uid asked for."""


class AmbiguousRun(StoreError):
    """A short instance uid that begins more than one instance's uid."""


_instances = schema.experiment_run_instances
_runs = schema.experiment_runs
_experiments = schema.experiments
_phases = schema.experiment_run_phases
_episodes = schema.experiment_run_episodes


def _steps_of_episode() -> sa.ColumnElement[int]:
    """Steps of the episode row in the enclosing query: its own count, or those recorded."""
    world_states, environments = schema.world_states, schema.environments
    recorded = (
        sa.select(sa.func.count(sa.distinct(world_states.c.step_index)))
        .select_from(
            world_states.join(environments, environments.c.id == world_states.c.environment_id)
        )
        .where(
            environments.c.experiment_run_phase_id == _episodes.c.experiment_run_phase_id,
            environments.c.worker_uid == _episodes.c.worker_uid,
            world_states.c.episode == _episodes.c.episode,
        )
        .correlate(_episodes)
        .scalar_subquery()
    )
    return sa.func.coalesce(_episodes.c.steps, recorded)


def steps_stored(connection: sa.Connection, instance_id: int) -> int:
    """The steps of run instance `instance_id` (`experiment_run_instances.id`) stored."""
    query = (
        sa.select(sa.func.coalesce(sa.func.sum(_steps_of_episode()), 0))
        .select_from(_episodes.join(_phases, _phases.c.id == _episodes.c.experiment_run_phase_id))
        .where(_phases.c.experiment_run_instance_id == instance_id)
    )
    return int(connection.execute(query).scalar_one())


def _summaries(where: sa.ColumnElement[bool] | None = None) -> sa.Select[tuple[object, ...]]:
    phase_counts = (
        sa.select(
            _phases.c.experiment_run_instance_id.label("instance_id"),
            sa.func.count().label("phases"),
        )
        .group_by(_phases.c.experiment_run_instance_id)
        .subquery()
    )
    episode_counts = (
        sa.select(
            _phases.c.experiment_run_instance_id.label("instance_id"),
            sa.func.count(_episodes.c.id).label("episodes"),
            sa.func.sum(_steps_of_episode()).label("steps"),
        )
        .select_from(_episodes.join(_phases, _phases.c.id == _episodes.c.experiment_run_phase_id))
        .group_by(_phases.c.experiment_run_instance_id)
        .subquery()
    )
    query = (
        sa.select(
            _runs.c.uid.label("run_uid"),
            _instances.c.uid.label("instance_uid"),
            _experiments.c.name.label("experiment_uid"),
            _instances.c.status,
            _instances.c.created_at,
            _instances.c.started_at,
            _instances.c.ended_at,
            _instances.c.status_reason,
            sa.func.coalesce(phase_counts.c.phases, 0).label("phases"),
            sa.func.coalesce(episode_counts.c.episodes, 0).label("episodes"),
            sa.func.coalesce(episode_counts.c.steps, 0).label("steps"),
            _instances.c.user,
            _runs.c.document,
            _instances.c.attempt,
            _instances.c.retry_of,
        )
        .select_from(
            _instances.join(_runs, _runs.c.id == _instances.c.experiment_run_id)
            .join(_experiments, _experiments.c.id == _runs.c.experiment_id)
            .outerjoin(phase_counts, phase_counts.c.instance_id == _instances.c.id)
            .outerjoin(episode_counts, episode_counts.c.instance_id == _instances.c.id)
        )
        .order_by(_instances.c.created_at, _instances.c.id)
    )
    return query if where is None else query.where(where)


def _summary(row: sa.Row[tuple[object, ...]]) -> RunSummary:
    m = row._mapping
    return RunSummary(
        run_uid=m["run_uid"],
        instance_uid=m["instance_uid"],
        experiment_uid=m["experiment_uid"],
        status=RunStatus(m["status"]),
        scheduled=utc(m["created_at"]),
        started=utc(m["started_at"]),
        ended=utc(m["ended_at"]),
        reason=m["status_reason"],
        phases=int(m["phases"]),
        episodes=int(m["episodes"]),
        steps=int(m["steps"]),
        attempt=int(m["attempt"]),
        retry_of=m["retry_of"],
    )


def list_runs(
    engine: sa.Engine,
    *,
    experiment_uid: str | None = None,
    run_uid: str | None = None,
    status: RunStatus | str | None = None,
) -> list[RunSummary]:
    """Every run instance in the store (oldest first), optionally filtered."""
    conditions = []
    if experiment_uid is not None:
        conditions.append(_experiments.c.name == experiment_uid)
    if run_uid is not None:
        conditions.append(_runs.c.uid == run_uid)
    if status is not None:
        conditions.append(_instances.c.status == str(status))
    where = sa.and_(*conditions) if conditions else None
    with engine.connect() as connection:
        return [_summary(row) for row in connection.execute(_summaries(where))]


def summaries_of(connection: sa.Connection, instance_uids: list[str]) -> list[RunSummary]:
    """The run instances among `instance_uids` the store has (oldest first)."""
    if not instance_uids:
        return []
    rows = connection.execute(_summaries(_instances.c.uid.in_(instance_uids)))
    return [_summary(row) for row in rows]


def run_page(
    engine: sa.Engine,
    *,
    offset: int,
    limit: int,
    experiment_uid: str | None = None,
    status: RunStatus | str | None = None,
) -> tuple[int, list[RunSummary]]:
    """(how many run instances match, `limit` of them from `offset`, newest first): the
    page is chosen first, so only its runs' totals are computed."""
    conditions = []
    if experiment_uid is not None:
        conditions.append(_experiments.c.name == experiment_uid)
    if status is not None:
        conditions.append(_instances.c.status == str(status))
    matching = (
        sa.select(_instances.c.id)
        .select_from(
            _instances.join(_runs, _runs.c.id == _instances.c.experiment_run_id).join(
                _experiments, _experiments.c.id == _runs.c.experiment_id
            )
        )
        .where(sa.and_(sa.true(), *conditions))
    )
    with engine.connect() as connection:
        total = connection.execute(
            sa.select(sa.func.count()).select_from(matching.subquery())
        ).scalar_one()
        ids = list(
            connection.execute(
                matching.order_by(_instances.c.created_at.desc(), _instances.c.id.desc())
                .offset(offset)
                .limit(limit)
            ).scalars()
        )
        rows = connection.execute(_summaries(_instances.c.id.in_(ids))).all() if ids else []
    return int(total), [_summary(row) for row in reversed(rows)]


def stored_uids(engine: sa.Engine, instance_uids: list[str]) -> set[str]:
    """Which of `instance_uids` the store has."""
    if not instance_uids:
        return set()
    with engine.connect() as connection:
        found = connection.execute(
            sa.select(_instances.c.uid).where(_instances.c.uid.in_(instance_uids))
        ).scalars()
        return set(found)


def finished_hashes(engine: sa.Engine, hashes: Iterable[str]) -> set[str]:
    """Which of `hashes` (`experiment_runs.hash`, see `schema.document_hash`) belong to a
    run with a `finished` instance."""
    wanted = list(set(hashes))
    found: set[str] = set()
    with engine.connect() as connection:
        for start in range(0, len(wanted), 500):  # a bounded IN list
            query = (
                sa.select(_runs.c.hash)
                .select_from(_runs.join(_instances, _instances.c.experiment_run_id == _runs.c.id))
                .where(
                    _runs.c.hash.in_(wanted[start : start + 500]),
                    _instances.c.status == RunStatus.FINISHED.value,
                )
                .distinct()
            )
            found.update(connection.execute(query).scalars())
    return found


def run_details(engine: sa.Engine, uid: str) -> RunDetails:
    """One run instance, by its uid, else the latest instance of the run `uid`, else the
    one instance whose uid begins with `uid` (at least `SHORT_UID_LENGTH` characters).

    Raises `UnknownRun` when none exists, `AmbiguousRun` (naming the candidates) when
    several instances begin with `uid`.
    """
    with engine.connect() as connection:
        rows = connection.execute(_summaries(_instances.c.uid == uid)).all()
        if not rows:
            rows = connection.execute(_summaries(_runs.c.uid == uid)).all()
        if not rows:
            rows = _by_prefix(connection, uid)
        if not rows:
            raise UnknownRun(f"the store has no run instance and no run {uid!r}")
        row = rows[-1]
        instance_id = connection.execute(
            sa.select(_instances.c.id).where(_instances.c.uid == row.instance_uid)
        ).scalar_one()
        return RunDetails(
            run=_summary(row),
            user=row.user,
            document=row.document,
            phases=_phase_summaries(connection, instance_id),
        )


def _by_prefix(connection: sa.Connection, prefix: str) -> list[sa.Row[tuple[object, ...]]]:
    """The one instance whose uid begins with `prefix` (a short uid), or none."""
    if len(prefix) < SHORT_UID_LENGTH or not all(c in "0123456789abcdef" for c in prefix):
        return []  # also keeps LIKE's wildcards out
    rows = connection.execute(_summaries(_instances.c.uid.like(f"{prefix}%"))).all()
    if len(rows) > 1:
        candidates = "; ".join(f"{row.instance_uid} ({row.run_uid}, {row.status})" for row in rows)
        raise AmbiguousRun(f"short uid {prefix!r} is ambiguous; candidates: {candidates}")
    return list(rows)


def _phase_summaries(connection: sa.Connection, instance_id: int) -> list[PhaseSummary]:
    episode_counts = (
        sa.select(
            _episodes.c.experiment_run_phase_id.label("phase_id"),
            sa.func.count(_episodes.c.id).label("episodes"),
            sa.func.sum(_steps_of_episode()).label("steps"),
        )
        .group_by(_episodes.c.experiment_run_phase_id)
        .subquery()
    )
    rows = connection.execute(
        sa.select(
            _phases,
            sa.func.coalesce(episode_counts.c.episodes, 0).label("episode_count"),
            sa.func.coalesce(episode_counts.c.steps, 0).label("step_count"),
        )
        .select_from(_phases.outerjoin(episode_counts, episode_counts.c.phase_id == _phases.c.id))
        .where(_phases.c.experiment_run_instance_id == instance_id)
        .order_by(_phases.c.number)
    ).all()
    summaries = []
    for row in rows:
        environments = connection.execute(
            sa.select(schema.environments.c.uid)
            .where(schema.environments.c.experiment_run_phase_id == row.id)
            .distinct()
            .order_by(schema.environments.c.uid)
        ).scalars()
        agents = connection.execute(
            sa.select(schema.agents.c.uid)
            .where(schema.agents.c.experiment_run_phase_id == row.id)
            .order_by(schema.agents.c.uid)
        ).scalars()
        summaries.append(
            PhaseSummary(
                number=row.number,
                name=row.uid,
                mode=row.mode,
                workers=row.workers,
                episodes=int(row.episode_count),
                steps=int(row.step_count),
                started=utc(row.started_at),
                ended=utc(row.ended_at),
                environments=list(environments),
                agents=list(agents),
            )
        )
    return summaries


def utc(value: datetime.datetime | None) -> datetime.datetime | None:
    """A stored timestamp as aware UTC (SQLite gives naive UTC, PostgreSQL aware)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)
