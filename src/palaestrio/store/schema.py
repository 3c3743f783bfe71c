"""The store's tables (SQLAlchemy Core), named like palaestrAI 3.5's store.

Table and column names follow palaestrAI's `database_model.py` for everything palaestrio
records, so analysis queries written for palaestrAI keep working. Columns palaestrio has
no data for are left out. Additions (palaestrAI lacks them):

- `experiment_run_instances`: `started_at`, `ended_at`, `status_reason`; status
  `cancelled`.
- `experiment_run_phases`: `workers`, `episodes` (per worker), `started_at`, `ended_at`.
- `experiment_run_episodes`: one row per (phase, worker, episode) with start, end, steps.
- `world_states`: `rewards`, `simtime` (a simulation time that is not an integer tick),
  NOT NULL `episode`/`step_index`; `muscle_actions`: `step_index`.
- Natural unique keys (see `palaestrio.records.record_key`) that make a resent batch
  idempotent; the world-state key doubles as the index for "all world states of run X,
  episode Y in order".
- `muscle_actions`: `terminated`/`truncated` as in palaestrAI 3.5.18 (NULL: the
  environments did not distinguish them).
- `brain_states`: like palaestrAI's, but the dump itself is a file (`path`, absolute;
  see `palaestrio.simulation.brains`); `state` stays NULL.
  `phase`/`worker` say which phase's brain it is (`tag` as palaestrAI writes it).
- `palaestrio_schema`: the schema version.
- `palaestrio_executors`: the executors that own runs (see `palaestrio.store.ownership`),
  and `experiment_run_instances.executor_id`, the owner of each run palaestrio scheduled
  (NULL for runs of a palaestrio before ownership: those are never reaped).
- `experiment_run_instances.attempt` (1, 2, ...) and `retry_of`, the uid of the first
  attempt's instance (NULL for a first attempt): a run that ended `error` and was
  retried has one instance per attempt.

Workers are identified by their index as a string (`worker_uid` "0", "1", ...), which
is what palaestrAI's `worker_uid`/`rollout_worker_uid` columns hold.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa

from palaestrio.status import RunStatus

SCHEMA_VERSION = 4
"""Bump on any change to the tables below, with a migration revision for it (see
`palaestrio.store.migrations`); a database of another version is refused.

2: `palaestrio_executors` and `experiment_run_instances.executor_id` (run ownership).
3: `brain_states`; `muscle_actions.terminated`/`truncated`.
4: `experiment_run_instances.attempt`/`retry_of` (retries).
"""

STATUSES = tuple(status for status in RunStatus if status is not RunStatus.STARTING)
"""The statuses a run instance can have in the store (`starting` is the executor's own)."""

metadata = sa.MetaData()


class _Json(sa.types.TypeDecorator[Any]):
    """JSON; JSONB on PostgreSQL. Chosen per dialect, so that PostgreSQL's dialect (about
    50 ms of imports) loads only where it is used, not in every SQLite store's start."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


JSON = _Json()
Timestamp = sa.TIMESTAMP(timezone=True)
_status_values = ", ".join(f"'{status.value}'" for status in STATUSES)


def _parent(column: str, *, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(
        f"{column}_id",
        sa.Integer,
        sa.ForeignKey(f"{column}s.id", ondelete="CASCADE"),
        nullable=nullable,
        index=True,
    )


palaestrio_schema = sa.Table(
    "palaestrio_schema",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
)

palaestrio_executors = sa.Table(
    "palaestrio_executors",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("boot_id", sa.String(64)),
    sa.Column("pid_namespace", sa.String(64)),
    sa.Column("pid", sa.Integer, nullable=False),
    # Field 22 of /proc/<pid>/stat (clock ticks since boot): tells a reused pid apart.
    sa.Column("pid_started", sa.BigInteger),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("lease_expires_at", Timestamp, nullable=False),
    sa.Column("ended_at", Timestamp),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("document", sa.Text),
    sa.Column("document_json", JSON),
)

experiment_runs = sa.Table(
    "experiment_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uid", sa.String(255), nullable=False, index=True),
    sa.Column("hash", sa.String(255), index=True),
    _parent("experiment"),
    sa.Column("document", sa.Text),
    sa.Column("document_json", JSON),
    sa.UniqueConstraint("experiment_id", "uid"),
)

experiment_run_instances = sa.Table(
    "experiment_run_instances",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uid", sa.String(196), nullable=False, unique=True),
    sa.Column("created_at", Timestamp),
    sa.Column("user", sa.String(255)),
    sa.Column("status", sa.String(32), nullable=False, server_default=RunStatus.SCHEDULED.value),
    _parent("experiment_run"),
    sa.Column("started_at", Timestamp),
    sa.Column("ended_at", Timestamp),
    sa.Column("status_reason", sa.Text),
    sa.Column(
        "executor_id",
        sa.String(64),
        sa.ForeignKey("palaestrio_executors.id", ondelete="SET NULL"),
        index=True,
    ),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    sa.Column("retry_of", sa.String(196), index=True),
    sa.CheckConstraint(f"status IN ({_status_values})", name="ck_experiment_run_instances_status"),
)

experiment_run_phases = sa.Table(
    "experiment_run_phases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uid", sa.String(255), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("mode", sa.String(128)),
    sa.Column("configuration", JSON),
    _parent("experiment_run_instance"),
    sa.Column("workers", sa.Integer, nullable=False),
    sa.Column("episodes", sa.Integer, nullable=False),
    sa.Column("started_at", Timestamp),
    sa.Column("ended_at", Timestamp),
    sa.UniqueConstraint("experiment_run_instance_id", "number"),
)

experiment_run_episodes = sa.Table(
    "experiment_run_episodes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    _parent("experiment_run_phase"),
    sa.Column("worker_uid", sa.String(255), nullable=False),
    sa.Column("episode", sa.Integer, nullable=False),
    sa.Column("started_at", Timestamp),
    sa.Column("ended_at", Timestamp),
    sa.Column("steps", sa.Integer),
    sa.UniqueConstraint("experiment_run_phase_id", "worker_uid", "episode"),
)

environments = sa.Table(
    "environments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uid", sa.String(255), nullable=False),
    sa.Column("worker_uid", sa.String(255), nullable=False),
    sa.Column("type", sa.String(255)),
    sa.Column("parameters", JSON),
    _parent("experiment_run_phase"),
    sa.UniqueConstraint("experiment_run_phase_id", "uid", "worker_uid"),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uid", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255)),
    sa.Column("muscles", JSON, nullable=False),
    sa.Column("configuration", JSON),
    _parent("experiment_run_phase"),
    sa.UniqueConstraint("experiment_run_phase_id", "uid"),
)

world_states = sa.Table(
    "world_states",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("walltime", Timestamp, nullable=False),
    sa.Column("simtime_ticks", sa.BigInteger),
    sa.Column("simtime", JSON),
    sa.Column("episode", sa.Integer, nullable=False),
    sa.Column("step_index", sa.Integer, nullable=False),
    sa.Column("state_dump", JSON),
    sa.Column("setpoints", JSON),
    sa.Column("rewards", JSON),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("mode", sa.String(32)),
    sa.Column(
        "environment_id",
        sa.Integer,
        sa.ForeignKey("environments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.CheckConstraint("step_index >= 0", name="ck_world_states_step_index"),
    sa.Index(
        "ux_world_states_environment_episode_step",
        "environment_id",
        "episode",
        "step_index",
        unique=True,
    ),
)

muscle_actions = sa.Table(
    "muscle_actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("walltime", Timestamp, nullable=False),
    sa.Column(
        "agent_id",
        sa.Integer,
        sa.ForeignKey("agents.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("rollout_worker_uid", sa.String(255), nullable=False),
    sa.Column("episode", sa.Integer, nullable=False),
    sa.Column("step_index", sa.Integer, nullable=False),
    sa.Column("sensor_readings", JSON),
    sa.Column("actuator_setpoints", JSON),
    sa.Column("rewards", JSON),
    sa.Column("objective", sa.Float),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("terminated", sa.Boolean),
    sa.Column("truncated", sa.Boolean),
    sa.Column("mode", sa.String(32)),
    sa.CheckConstraint("step_index >= 0", name="ck_muscle_actions_step_index"),
    sa.Index(
        "ux_muscle_actions_agent_worker_episode_step",
        "agent_id",
        "rollout_worker_uid",
        "episode",
        "step_index",
        unique=True,
    ),
)

brain_states = sa.Table(
    "brain_states",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("walltime", Timestamp, nullable=False),
    sa.Column("state", sa.LargeBinary),
    sa.Column("tag", sa.String(96), index=True),
    sa.Column("path", sa.Text),
    sa.Column("phase", sa.Integer, nullable=False),
    sa.Column("worker_uid", sa.String(255)),
    sa.Column("simtime_ticks", sa.BigInteger),
    sa.Column(
        "agent_id",
        sa.Integer,
        sa.ForeignKey("agents.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Index("ix_brain_states_agent_tag_id", "agent_id", "tag", "id"),
)


def document_hash(document: str) -> str:
    """`experiment_runs.hash`: the SHA-256 of the run's experiment file (its seed, too,
    is in it), what `--resume` compares."""
    return hashlib.sha256(document.encode()).hexdigest()
