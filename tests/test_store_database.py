"""Store URIs, `database-create`, the schema and its version, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from palaestrio.store import schema
from palaestrio.store.engine import create_database, describe, open_database, parse_store_uri
from palaestrio.store.errors import SchemaVersionError, StoreError
from palaestrio.store.uri import describe as describe_uri
from palaestrio.store.uri import parse_uri
from store_support import PostgresServer, count

pytest_plugins = ["pg"]

# palaestrAI 3.5's names (palaestrai/store/database_model.py) for what palaestrio records.
PALAESTRAI_COLUMNS = {
    "experiments": {"id", "name", "document", "document_json"},
    "experiment_runs": {"id", "uid", "hash", "experiment_id", "document", "document_json"},
    "experiment_run_instances": {
        "id", "uid", "created_at", "user", "status", "experiment_run_id",
    },
    "experiment_run_phases": {
        "id", "uid", "number", "mode", "configuration", "experiment_run_instance_id",
    },
    "environments": {"id", "uid", "worker_uid", "type", "parameters", "experiment_run_phase_id"},
    "agents": {"id", "uid", "name", "muscles", "configuration", "experiment_run_phase_id"},
    "world_states": {
        "id", "walltime", "simtime_ticks", "episode", "state_dump", "setpoints", "done",
        "mode", "step_index", "environment_id",
    },
    "muscle_actions": {
        "id", "walltime", "agent_id", "episode", "sensor_readings", "actuator_setpoints",
        "rewards", "objective", "done", "mode", "rollout_worker_uid",
    },
}  # fmt: skip


def test_uri_schemes() -> None:
    assert parse_store_uri("sqlite:///runs.db").drivername == "sqlite+pysqlite"
    for uri in ("postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db"):
        assert parse_store_uri(uri).drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("mysql://u:secret@h/db", "unknown store URI scheme 'mysql'"),
        ("sqlite://", "names no database file"),
        ("sqlite:///:memory:", "in-memory"),
        ("postgresql://u@h", "names no database"),
        ("not a uri", "not a store URI"),
    ],
)
def test_bad_uri_is_named(uri: str, complaint: str) -> None:
    with pytest.raises(StoreError, match=complaint) as raised:
        parse_store_uri(uri)
    assert "secret" not in str(raised.value)


def test_tables_mirror_palaestrai() -> None:
    for table, columns in PALAESTRAI_COLUMNS.items():
        have = {column.name for column in schema.metadata.tables[table].columns}
        assert columns <= have, f"{table} lacks {columns - have}"


def test_create_makes_every_table(store_engine: sa.Engine) -> None:
    engine = store_engine
    tables = set(sa.inspect(engine).get_table_names())
    assert set(schema.metadata.tables) <= tables
    with engine.connect() as connection:
        version = connection.execute(sa.select(schema.palaestrio_schema.c.version)).scalar_one()
    assert version == schema.SCHEMA_VERSION
    index = {i["name"] for i in sa.inspect(engine).get_indexes("world_states")}
    assert "ux_world_states_environment_episode_step" in index


def test_database_create_twice(store_uri: str) -> None:
    create_database(store_uri)
    create_database(store_uri)
    engine = open_database(store_uri)
    try:
        assert count(engine, "palaestrio_schema") == 1
        assert count(engine, "experiments") == 0
    finally:
        engine.dispose()


def test_other_schema_version_is_refused(store_database: str) -> None:
    database = store_database
    engine = open_database(database)
    with engine.begin() as connection:
        connection.execute(sa.update(schema.palaestrio_schema).values(version=999))
    engine.dispose()
    expected = rf"schema version 999.*uses version {schema.SCHEMA_VERSION}"
    with pytest.raises(SchemaVersionError, match=expected):
        open_database(database)
    with pytest.raises(SchemaVersionError, match="schema version 999"):
        create_database(database)


def test_missing_database_is_named(store_uri: str) -> None:
    with pytest.raises(StoreError, match=r"does not exist.*database-create"):
        open_database(store_uri)


def test_foreign_tables_are_refused(store_uri: str) -> None:
    """A database with store tables but no palaestrio version (e.g. palaestrAI's)."""
    create_database(store_uri)
    engine = open_database(store_uri)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE palaestrio_schema"))
    engine.dispose()
    with pytest.raises(StoreError, match="no palaestrio schema version"):
        create_database(store_uri)
    with pytest.raises(StoreError, match="not a palaestrio store database"):
        open_database(store_uri)


def test_sqlite_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"directory .* does not exist"):
        create_database(f"sqlite:///{tmp_path}/nowhere/store.db")


def test_sqlite_connections_are_configured(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/store.db"
    create_database(uri)
    engine = open_database(uri)
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        engine.dispose()


def test_unreachable_server_is_named() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        uri = f"postgresql://someone:secret@127.0.0.1:{port}/runs"
        with pytest.raises(StoreError, match=rf"cannot use store database .*:{port}") as raised:
            create_database(uri)
    assert "secret" not in str(raised.value)


@pytest.mark.postgres
def test_postgres_database_is_created_on_the_server(postgres_server: PostgresServer) -> None:
    uri = postgres_server.uri("made_by_database_create")
    with pytest.raises(StoreError, match="does not exist"):
        open_database(uri)
    create_database(uri)
    create_database(uri)
    open_database(uri).dispose()


@pytest.mark.parametrize(
    ("uri", "described"),
    [
        ("sqlite:///runs.db", "sqlite:///runs.db"),
        ("sqlite+pysqlite:////tmp/a b.db", "sqlite:////tmp/a b.db"),
        (
            "postgresql+psycopg://u:se%40cret@h:5432/db?sslmode=require",
            "postgresql://u:***@h:5432/db?sslmode=require",
        ),
        ("postgres://u@[::1]/db", "postgres://u@[::1]/db"),
    ],
)
def test_light_uri_parser_agrees_with_sqlalchemy(uri: str, described: str) -> None:
    """The executor's and the command line's parser (no SQLAlchemy) and the store's URL."""
    url = parse_store_uri(uri)
    parts = parse_uri(uri)
    assert (parts.username, parts.password, parts.host, parts.port, parts.database) == (
        url.username,
        url.password,
        url.host,
        url.port,
        url.database,
    )
    assert describe_uri(uri) == described == describe(uri)


def test_the_executor_side_imports_no_sqlalchemy() -> None:
    """SQLAlchemy loads in the store process only: the CLI's experiment-start, the
    executor and its summary table do without it (0.3-0.5 s of imports)."""
    code = (
        "import sys, palaestrio.cli.experiment, palaestrio.executor, palaestrio.cli.output\n"
        "from palaestrio.store.run_logs import run_log_dir\n"
        "run_log_dir('postgresql://u@h/db')\n"
        "assert not [m for m in sys.modules if m.startswith('sqlalchemy')], 'sqlalchemy'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
