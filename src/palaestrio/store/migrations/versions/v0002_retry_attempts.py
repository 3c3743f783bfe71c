"""Retries: `experiment_run_instances.attempt` and `retry_of` (palaestrio schema 4).

Revision ID: v0002_retry_attempts
Revises: v0001_baseline
"""

import sqlalchemy as sa
from alembic import op

revision = "v0002_retry_attempts"
down_revision: str | None = "v0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA_VERSION = 4


def upgrade() -> None:
    op.add_column(
        "experiment_run_instances",
        sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
    )
    op.add_column(
        "experiment_run_instances",
        sa.Column("retry_of", sa.String(length=196), nullable=True),
    )
    op.create_index(
        op.f("ix_experiment_run_instances_retry_of"),
        "experiment_run_instances",
        ["retry_of"],
        unique=False,
    )
    _set_version(SCHEMA_VERSION)


def downgrade() -> None:
    op.drop_index(op.f("ix_experiment_run_instances_retry_of"), "experiment_run_instances")
    with op.batch_alter_table("experiment_run_instances") as batch:
        batch.drop_column("retry_of")
        batch.drop_column("attempt")
    _set_version(3)


def _set_version(version: int) -> None:
    palaestrio_schema = sa.table("palaestrio_schema", sa.column("version", sa.Integer))
    op.execute(sa.update(palaestrio_schema).values(version=version))
