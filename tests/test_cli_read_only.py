"""A store the user cannot write (a colleague's results file, a 0444 file, a read-only
directory, a PostgreSQL role with SELECT only): `runs list` and `runs show` read it;
a run given such a store fails naming the store and "permission denied"."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result

from cli_support import cli_runner
from executor_support import write_experiment
from palaestrio.cli import cli
from palaestrio.store import StoreError, list_runs, new_executor_id, open_database
from palaestrio.store.ownership import register_executor
from store_support import PostgresServer

pytest_plugins = ["pg"]

NOBODY = 65534


def invoke(*args: str | Path) -> Result:
    return cli_runner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """As `nobody` (effective ids) when run as root, who may write a 0444 file."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def finished_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory (others may enter it) with `store.db` holding one finished run."""
    # Not tmp_path: pytest's base directory is private to its user (nobody cannot enter).
    directory = Path(tempfile.mkdtemp(prefix="palaestrio-ro-cli-"))
    directory.chmod(0o755)
    monkeypatch.chdir(directory)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(directory / "xdg"))
    try:
        run_file = write_experiment(directory, "colleague")
        result = invoke("experiment-start", run_file, "--store", "sqlite:///store.db")
        assert result.exit_code == 0, result.output
        run_file.unlink()
        # What the CLI imports, imported as root (nobody cannot read the interpreter's
        # directory here), from the writable store.
        assert invoke("runs", "show", "colleague", "--store", "sqlite:///store.db").exit_code == 0
        yield directory
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


def assert_readable(uri: str) -> None:
    listed = invoke("runs", "list", "--store", uri)
    assert listed.exit_code == 0, listed.output
    assert "colleague" in listed.stdout and "finished" in listed.stdout
    shown = invoke("runs", "show", "colleague", "--store", uri)
    assert shown.exit_code == 0, shown.output
    assert "finished" in shown.stdout


@pytest.mark.parametrize("read_only", ["file", "directory"])
def test_runs_list_and_show_on_a_read_only_sqlite_store(finished_run: Path, read_only: str) -> None:
    path = finished_run / "store.db"
    assert sorted(p.name for p in finished_run.iterdir()) == ["store.db"]
    before = path.read_bytes()
    path.chmod(0o444)
    if read_only == "directory":
        finished_run.chmod(0o555)
    elif os.geteuid() == 0:
        os.chown(finished_run, NOBODY, NOBODY)  # nobody may make -shm next to the file
    with unprivileged():
        assert not os.access(path, os.W_OK, effective_ids=True)
        assert_readable("sqlite:///store.db")
    assert path.read_bytes() == before


def test_a_read_only_sqlite_store_refuses_a_run_naming_its_path(finished_run: Path) -> None:
    """What the executor's store service meets first when it is given such a store."""
    path = finished_run / "store.db"
    path.chmod(0o444)
    if os.geteuid() == 0:
        os.chown(finished_run, NOBODY, NOBODY)
    with unprivileged():
        # The writer's engine, opened (and connecting) as the user.
        engine = open_database(f"sqlite:///{path}", immediate=True)
        try:
            with pytest.raises(StoreError) as raised:
                register_executor(engine, new_executor_id(), 30)
        finally:
            engine.dispose()
    assert str(raised.value).startswith(f"store sqlite:///{path} is read-only here: ")
    assert "permission denied" in str(raised.value)


@pytest.mark.postgres
def test_runs_list_and_show_with_a_select_only_role(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    uri = postgres_server.uri()
    run_file = write_experiment(tmp_path, "colleague")
    assert invoke("database-create", "--store", uri).exit_code == 0
    assert invoke("experiment-start", run_file, "--store", uri).exit_code == 0
    role = f"reader_{uuid.uuid4().hex[:8]}"
    owner = open_database(uri)
    try:
        with owner.begin() as connection:
            connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
            connection.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        reader_uri = uri.replace("postgres@", f"{role}@")
        assert_readable(reader_uri)

        started = invoke("experiment-start", run_file, "--store", reader_uri)
        assert started.exit_code == 2, started.output
        (line,) = started.stderr.splitlines()
        assert line.startswith(f"Error: store postgresql://{role}@/")
        assert "read-only here: permission denied" in line
        with owner.connect() as connection:
            count = connection.execute(sa.text("SELECT count(*) FROM experiment_run_instances"))
            assert count.scalar_one() == 1
        assert len(list_runs(owner)) == 1
    finally:
        owner.dispose()
