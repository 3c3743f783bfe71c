"""A throw-away PostgreSQL server, and the store test fixtures on both backends.

Test modules load this with `pytest_plugins = ["pg"]` (and import from it only for
type checking, so pytest can rewrite its asserts).

`postgres_server` (a session fixture) starts one server per test session with
initdb/pg_ctl in a temporary directory, listening only on a unix socket there, and
stops it at the end. Run as root, the server runs as the `postgres` system user
(initdb refuses root). Its environment lacks the per-test leak tag, because it outlives
the test that happened to start it. Tests are skipped only when no initdb exists.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from palaestrio.store.engine import create_database, open_database

TAG_VARIABLE = "PALAESTRIO_TEST_TAG"


def find_bindir() -> Path | None:
    """The directory of the newest PostgreSQL server binaries, or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not candidates:
        return None
    newest = max(candidates, key=lambda path: int(Path(path).parent.parent.name))
    return Path(newest).parent


class PostgresServer:
    """One PostgreSQL server in its own temporary directory."""

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable
        self.directory = Path(tempfile.mkdtemp(prefix="palaestrio-pg-"))
        self.data = self.directory / "data"
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.directory, user.pw_uid, user.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]
        self.running = False

    def _run(self, *argv: str) -> None:
        environment = {k: v for k, v in os.environ.items() if k != TAG_VARIABLE}
        done = subprocess.run(
            [*self._run_as, *argv],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"{Path(argv[0]).name} failed ({done.returncode}): {stderr}")

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        options = f"-c listen_addresses='' -k {self.directory}"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D", str(self.data),
            "-l", str(self.directory / "server.log"),
            "-o", options,
            "-w", "-t", "60",
            "start",
        )  # fmt: skip
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                pg_ctl = str(self.bindir / "pg_ctl")
                self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def uri(self, database: str | None = None) -> str:
        """A URI for `database` (default: a fresh name) on this server."""
        name = database or f"t_{uuid.uuid4().hex[:12]}"
        return f"postgresql://postgres@/{name}?host={self.directory}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no initdb found)")
    server = PostgresServer(bindir)
    atexit.register(server.stop)  # also when the session dies before its teardown
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URI of a database that does not exist yet, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.uri()


@pytest.fixture
def store_database(store_uri: str) -> str:
    """The URI of a freshly created store database."""
    create_database(store_uri)
    return store_uri


@pytest.fixture
def store_engine(store_database: str) -> Iterator[sa.Engine]:
    """An engine on a freshly created store database."""
    engine = open_database(store_database)
    try:
        yield engine
    finally:
        engine.dispose()
