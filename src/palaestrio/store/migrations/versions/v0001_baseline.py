"""Baseline: the store schema of palaestrio schema version 3 (as palaestrio 0.1 creates
it), the start of the migration history.

Revision ID: v0001_baseline
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "v0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA_VERSION = 3
TABLES = (
    "experiments",
    "palaestrio_executors",
    "palaestrio_schema",
    "experiment_runs",
    "experiment_run_instances",
    "experiment_run_phases",
    "agents",
    "environments",
    "experiment_run_episodes",
    "brain_states",
    "muscle_actions",
    "world_states",
)
"""In the order they are made (parents first)."""


def upgrade() -> None:
    _tables_1()
    _tables_2()
    _tables_3()
    _tables_4()
    _tables_5()
    _tables_6()
    _tables_7()
    _tables_8()
    _tables_9()
    palaestrio_schema = sa.table("palaestrio_schema", sa.column("version", sa.Integer))
    op.execute(sa.insert(palaestrio_schema).values(version=SCHEMA_VERSION))


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)


def _tables_1() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("document", sa.Text(), nullable=True),
        sa.Column(
            "document_json",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "palaestrio_executors",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("boot_id", sa.String(length=64), nullable=True),
        sa.Column("pid_namespace", sa.String(length=64), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("pid_started", sa.BigInteger(), nullable=True),
        sa.Column("started_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("lease_expires_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("ended_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "palaestrio_schema",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )


def _tables_2() -> None:
    op.create_table(
        "experiment_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("hash", sa.String(length=255), nullable=True),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=True),
        sa.Column(
            "document_json",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment_id", "uid"),
    )
    op.create_index(
        op.f("ix_experiment_runs_experiment_id"), "experiment_runs", ["experiment_id"], unique=False
    )
    op.create_index(op.f("ix_experiment_runs_hash"), "experiment_runs", ["hash"], unique=False)
    op.create_index(op.f("ix_experiment_runs_uid"), "experiment_runs", ["uid"], unique=False)


def _tables_3() -> None:
    op.create_table(
        "experiment_run_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=196), nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("user", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="scheduled", nullable=False),
        sa.Column("experiment_run_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("ended_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("executor_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "status IN ('scheduled', 'running', 'finished', 'error', 'cancelled')",
            name="ck_experiment_run_instances_status",
        ),
        sa.ForeignKeyConstraint(["executor_id"], ["palaestrio_executors.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["experiment_run_id"], ["experiment_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uid"),
    )
    op.create_index(
        op.f("ix_experiment_run_instances_executor_id"),
        "experiment_run_instances",
        ["executor_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_experiment_run_instances_experiment_run_id"),
        "experiment_run_instances",
        ["experiment_run_id"],
        unique=False,
    )


def _tables_4() -> None:
    op.create_table(
        "experiment_run_phases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=128), nullable=True),
        sa.Column(
            "configuration",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("experiment_run_instance_id", sa.Integer(), nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("ended_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["experiment_run_instance_id"], ["experiment_run_instances.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment_run_instance_id", "number"),
    )
    op.create_index(
        op.f("ix_experiment_run_phases_experiment_run_instance_id"),
        "experiment_run_phases",
        ["experiment_run_instance_id"],
        unique=False,
    )


def _tables_5() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column(
            "muscles",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "configuration",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("experiment_run_phase_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_run_phase_id"], ["experiment_run_phases.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment_run_phase_id", "uid"),
    )
    op.create_index(
        op.f("ix_agents_experiment_run_phase_id"),
        "agents",
        ["experiment_run_phase_id"],
        unique=False,
    )


def _tables_6() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("worker_uid", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=True),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("experiment_run_phase_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_run_phase_id"], ["experiment_run_phases.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment_run_phase_id", "uid", "worker_uid"),
    )
    op.create_index(
        op.f("ix_environments_experiment_run_phase_id"),
        "environments",
        ["experiment_run_phase_id"],
        unique=False,
    )
    op.create_table(
        "experiment_run_episodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_run_phase_id", sa.Integer(), nullable=False),
        sa.Column("worker_uid", sa.String(length=255), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("ended_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["experiment_run_phase_id"], ["experiment_run_phases.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment_run_phase_id", "worker_uid", "episode"),
    )
    op.create_index(
        op.f("ix_experiment_run_episodes_experiment_run_phase_id"),
        "experiment_run_episodes",
        ["experiment_run_phase_id"],
        unique=False,
    )


def _tables_7() -> None:
    op.create_table(
        "brain_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("walltime", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=True),
        sa.Column("tag", sa.String(length=96), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("worker_uid", sa.String(length=255), nullable=True),
        sa.Column("simtime_ticks", sa.BigInteger(), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_brain_states_agent_id"), "brain_states", ["agent_id"], unique=False)
    op.create_index(
        "ix_brain_states_agent_tag_id", "brain_states", ["agent_id", "tag", "id"], unique=False
    )
    op.create_index(op.f("ix_brain_states_tag"), "brain_states", ["tag"], unique=False)


def _tables_8() -> None:
    op.create_table(
        "muscle_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("walltime", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("rollout_worker_uid", sa.String(length=255), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column(
            "sensor_readings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "actuator_setpoints",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "rewards",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("objective", sa.Float(), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("terminated", sa.Boolean(), nullable=True),
        sa.Column("truncated", sa.Boolean(), nullable=True),
        sa.Column("mode", sa.String(length=32), nullable=True),
        sa.CheckConstraint("step_index >= 0", name="ck_muscle_actions_step_index"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_muscle_actions_agent_worker_episode_step",
        "muscle_actions",
        ["agent_id", "rollout_worker_uid", "episode", "step_index"],
        unique=True,
    )


def _tables_9() -> None:
    op.create_table(
        "world_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("walltime", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("simtime_ticks", sa.BigInteger(), nullable=True),
        sa.Column(
            "simtime",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column(
            "state_dump",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "setpoints",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "rewards",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=True),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("step_index >= 0", name="ck_world_states_step_index"),
        sa.ForeignKeyConstraint(["environment_id"], ["environments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_world_states_environment_episode_step",
        "world_states",
        ["environment_id", "episode", "step_index"],
        unique=True,
    )
