"""Schema migrations (Alembic, `palaestrio database-migrate`) and `runs delete`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import Result

from cli_support import cli_runner
from executor_support import write_experiment
from palaestrio.cli import cli
from palaestrio.store import create_database, list_runs, open_database, schema
from palaestrio.store.engine import _create_postgres_database, make_engine, parse_store_uri
from palaestrio.store.migrate import REVISIONS, head_revision, upgrade

pytest_plugins = ["pg"]


def invoke(*args: str | Path, input: str | None = None) -> Result:
    return cli_runner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=True)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for key in ("STORE_URI", "BROKER_URI", "PARALLEL_RUNS", "LOGGING"):
        monkeypatch.delenv(f"PALAESTRIO_{key}", raising=False)
    yield tmp_path


def test_the_head_revision_is_the_current_schema_version() -> None:
    assert REVISIONS[schema.SCHEMA_VERSION] == head_revision()


def test_migrations_from_nothing_make_exactly_the_schema(store_uri: str) -> None:
    url = parse_store_uri(store_uri)
    if url.get_backend_name() == "postgresql":
        _create_postgres_database(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            upgrade(connection)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), schema.metadata)
            assert differences == []
            version = connection.execute(sa.select(schema.palaestrio_schema.c.version))
            assert version.scalar_one() == schema.SCHEMA_VERSION
    finally:
        engine.dispose()
    open_database(store_uri).dispose()  # a store as database-create makes it


def test_database_migrate_stamps_a_created_store_and_is_idempotent(workdir: Path) -> None:
    assert invoke("database-create").exit_code == 0
    first = invoke("database-migrate")
    assert first.exit_code == 0, first.output
    assert f"migrated from unversioned to {head_revision()}" in first.stdout
    again = invoke("database-migrate")
    assert again.exit_code == 0, again.output
    assert f"is current (revision {head_revision()})" in again.stdout
    open_database("sqlite:///palaestrio.db").dispose()


def test_database_migrate_refuses_what_it_cannot_migrate(workdir: Path) -> None:
    missing = invoke("database-migrate")
    assert missing.exit_code == 2 and "database-create" in missing.stderr
    create_database("sqlite:///old.db")
    with sqlite3.connect(workdir / "old.db") as connection:
        connection.execute("UPDATE palaestrio_schema SET version = 2")
    connection.close()
    old = invoke("database-migrate", "--store", "sqlite:///old.db")
    assert old.exit_code == 2
    assert "schema version 2, older than the migration history" in old.stderr
    opened = invoke("runs", "list", "--store", "sqlite:///old.db")
    assert "palaestrio database-migrate" in opened.stderr


def stored(uri: str = "sqlite:///palaestrio.db") -> list[tuple[str, str]]:
    engine = open_database(uri)
    try:
        return [(run.run_uid, run.instance_uid) for run in list_runs(engine)]
    finally:
        engine.dispose()


def row_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as connection:
        counts = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in schema.metadata.tables
        }
    connection.close()
    return counts


def test_runs_delete_asks_then_removes_everything_of_the_run(workdir: Path) -> None:
    for name in ("keep", "drop"):
        assert invoke("experiment-start", write_experiment(workdir, name)).exit_code == 0
    assert invoke("experiment-start", write_experiment(workdir, "drop")).exit_code == 0
    before = row_counts(workdir / "palaestrio.db")
    ((_, kept),) = [run for run in stored() if run[0] == "keep"]

    declined = invoke("runs", "delete", "drop", input="n\n")
    assert declined.exit_code == 1
    assert declined.stdout.count(" drop  finished") == 2  # both instances are named
    assert row_counts(workdir / "palaestrio.db") == before

    deleted = invoke("runs", "delete", "drop", input="y\n")
    assert deleted.exit_code == 0, deleted.output
    assert "deleted 2 run instance(s)" in deleted.stdout
    assert stored() == [("keep", kept)]
    after = row_counts(workdir / "palaestrio.db")
    for table in ("world_states", "muscle_actions", "experiment_run_phases", "agents"):
        assert 0 < after[table] < before[table], table
    assert after["experiment_runs"] == 1
    assert invoke("runs", "delete", "--yes", kept[:8]).exit_code == 0
    counts = row_counts(workdir / "palaestrio.db")
    assert {table for table, rows in counts.items() if rows} <= {
        "palaestrio_schema",
        "palaestrio_executors",
    }


def test_runs_delete_by_experiment_and_live_runs_refused(workdir: Path) -> None:
    for name in ("one", "two"):
        assert invoke("experiment-start", write_experiment(workdir, name)).exit_code == 0
    engine = open_database("sqlite:///palaestrio.db")
    try:
        experiment = list_runs(engine)[0].experiment_uid
    finally:
        engine.dispose()
    with sqlite3.connect(workdir / "palaestrio.db") as connection:
        connection.execute(
            # No owner: reaping leaves it running (an owned one whose executor is gone
            # would be marked error first, and could go).
            "UPDATE experiment_run_instances SET status = 'running', executor_id = NULL "
            "WHERE id = "
            "(SELECT min(id) FROM experiment_run_instances)"
        )
    connection.close()
    refused = invoke("runs", "delete", "--yes", "--experiment", experiment)
    assert refused.exit_code == 2
    assert "still live" in refused.stderr and "(one, running)" in refused.stderr
    assert len(stored()) == 2
    nothing = invoke("runs", "delete", "--yes", "--experiment", "no-such-experiment")
    assert nothing.exit_code == 2 and "no runs of experiment" in nothing.stderr
    assert invoke("runs", "delete").exit_code == 2  # nothing named


def test_a_schema_3_store_gets_attempts_and_keeps_its_runs(workdir: Path) -> None:
    engine = make_engine(parse_store_uri("sqlite:///old.db"))
    try:
        with engine.begin() as connection:
            upgrade(connection, "v0001_baseline")
            connection.exec_driver_sql("INSERT INTO experiments (id, name) VALUES (1, 'e')")
            connection.exec_driver_sql(
                "INSERT INTO experiment_runs (id, uid, experiment_id) VALUES (1, 'r', 1)"
            )
            connection.exec_driver_sql(
                "INSERT INTO experiment_run_instances (uid, status, experiment_run_id) "
                "VALUES ('i', 'finished', 1)"
            )
    finally:
        engine.dispose()
    migrated = invoke("database-migrate", "--store", "sqlite:///old.db")
    assert migrated.exit_code == 0, migrated.output
    assert "v0002_retry_attempts" in migrated.stdout
    store = open_database("sqlite:///old.db")
    try:
        (run,) = list_runs(store)
    finally:
        store.dispose()
    assert (run.instance_uid, run.status, run.attempt, run.retry_of) == ("i", "finished", 1, None)
