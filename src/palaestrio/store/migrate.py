"""`palaestrio database-migrate`: a store made by an earlier palaestrio brought to this
one's schema with Alembic (the revisions are in `palaestrio.store.migrations`).

A store records its Alembic revision in `alembic_version`. Stores made by
`database-create` have none: their `palaestrio_schema` version says which revision
they are at (`REVISIONS`), and they are stamped with it before upgrading.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from palaestrio.store.engine import (
    _connection_errors,
    _stored_version,
    describe,
    make_engine,
    parse_store_uri,
)
from palaestrio.store.errors import StoreError

REVISIONS = {3: "v0001_baseline", 4: "v0002_retry_attempts"}
"""The Alembic revision of each palaestrio schema version since migrations began."""

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for the store's migrations, on `connection`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migration history is empty"
    return head


def upgrade(connection: sa.Connection, target: str = "head") -> None:
    """Runs the migrations up to `target` on `connection` (an empty database: all)."""
    command.upgrade(alembic_config(connection), target)


def migrate(uri: str) -> tuple[str | None, str]:
    """Upgrades the store at `uri` to the head revision; returns (before, after).

    `before` is None for a store that had no revision yet (it is stamped first).
    Raises `StoreError` for a database that is not a palaestrio store, or whose schema
    version predates the migration history.
    """
    url = parse_store_uri(uri)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise StoreError(
            f"store database {describe(url)} does not exist: "
            "create it with `palaestrio database-create`"
        )
    engine = make_engine(url, immediate=True)
    try:
        with _connection_errors(url), engine.begin() as connection:
            before = MigrationContext.configure(connection).get_current_revision()
            if before is None:
                command.stamp(alembic_config(connection), _revision_of(connection, url))
            upgrade(connection)
            after = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return before, after or head_revision()


def _revision_of(connection: sa.Connection, url: sa.URL) -> str:
    version = _stored_version(connection)
    if version is None:
        raise StoreError(
            f"{describe(url)} is not a palaestrio store database (no schema version): "
            "create it with `palaestrio database-create`"
        )
    if version not in REVISIONS:
        raise StoreError(
            f"store database {describe(url)} has palaestrio schema version {version}, "
            f"older than the migration history (from version {min(REVISIONS)}): "
            "use a new database"
        )
    return REVISIONS[version]
