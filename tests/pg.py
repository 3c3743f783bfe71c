"""The store test fixtures, on SQLite and on a throw-away PostgreSQL server.

Test modules load this with `pytest_plugins = ["pg"]` (and import from it only for
type checking, so pytest can rewrite its asserts).

`postgres_server` (a session fixture) starts one `store_support.PostgresServer` per
test session and stops it at the end. Its environment lacks the per-test leak tag,
because it outlives the test that happened to start it, and its processes are allowed
by the leak guard. Tests are skipped only when no initdb exists.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from palaestrio.store.engine import create_database, open_database
from store_support import PostgresServer, find_bindir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no initdb found)")
    # conftest's fixture-setup hook does not see session fixtures (a conftest's hooks
    # apply below its directory, a session fixture's node is the rootdir), and a
    # restart makes new server processes: the server tells the guard itself.
    guard = getattr(sys.modules.get("conftest"), "GUARD", None)
    server = PostgresServer(bindir, guard=guard)
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
