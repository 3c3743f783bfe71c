"""Store URIs, engines, `database-create` and the schema-version check.

Two kinds of URI are accepted:

- `sqlite:///path/to/file.db` (relative) or `sqlite:////absolute/file.db`: the embedded
  default. Every connection runs in WAL mode with foreign keys on and a busy timeout.
- `postgresql://user:password@host:port/database` (also `postgres://` and
  `postgresql+psycopg://`): PostgreSQL through psycopg 3.

`create_database` makes the database (the file, or `CREATE DATABASE` on the server) and
the tables, and is idempotent. `open_database` only opens an existing, current database
and fails with one clear `StoreError` otherwise.

A SQLite store this process cannot write (a 0444 file, a read-only directory) is still
readable: WAL mode needs a `-shm` file next to the database, and where none exists and
none can be made, the reader opens the file as immutable instead.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.engine import URL

from palaestrio.store import schema
from palaestrio.store.errors import SchemaVersionError, StoreError
from palaestrio.store.uri import POSTGRES_SCHEMES, SQLITE_SCHEMES, parse_uri
from palaestrio.store.uri import describe as describe_uri

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10

_json_encoder = msgspec.json.Encoder()


def to_json(value: Any) -> str:
    """JSON text for a column; non-finite floats become null (JSON has no NaN)."""
    return _json_encoder.encode(value).decode()


def insert_for(dialect: sa.Dialect) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT construct, which has ON CONFLICT DO NOTHING / DO UPDATE."""
    if dialect.name == "postgresql":  # loaded only for PostgreSQL (imports take ~50 ms)
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def refused_write(error: sqlalchemy.exc.DBAPIError) -> bool:
    """The database refused a write for want of permission (a read-only store)."""
    code = getattr(error.orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM)
    # insufficient_privilege, read_only_sql_transaction (a standby, or read-only role)
    return getattr(error.orig, "sqlstate", None) in ("42501", "25006")


def parse_store_uri(uri: str) -> URL:
    """The SQLAlchemy URL for a store URI; raises `StoreError` naming what is wrong
    (`palaestrio.store.uri.parse_uri` decides what a store URI is)."""
    parts = parse_uri(uri)
    query: dict[str, str | list[str]] = {}
    for key, value in parts.query:
        held = query.get(key)
        query[key] = (
            value if held is None else [*([held] if isinstance(held, str) else held), value]
        )
    return URL.create(
        "sqlite+pysqlite" if parts.backend == "sqlite" else "postgresql+psycopg",
        username=parts.username,
        password=parts.password,
        host=parts.host,
        port=parts.port,
        database=parts.database,
        query=query,
    )


def describe(url: URL | str) -> str:
    """The URI with any password masked, for messages."""
    if isinstance(url, str):
        return describe_uri(url)
    if url.drivername in SQLITE_SCHEMES | POSTGRES_SCHEMES:
        url = url.set(drivername=url.get_backend_name())  # as users write it
    return url.render_as_string(hide_password=True)


def make_engine(uri: str | URL, *, immediate: bool = False) -> sa.Engine:
    """An engine for a store URI, without touching the database.

    `immediate=True` makes every SQLite transaction `BEGIN IMMEDIATE`, for the writer: it
    takes the write lock up front instead of failing to upgrade a read lock later.
    """
    url = parse_store_uri(uri) if isinstance(uri, str) else uri
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, immediate=immediate)
    return sa.create_engine(
        url,
        json_serializer=to_json,
        pool_pre_ping=True,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    )


def _sqlite_engine(url: URL, *, immediate: bool) -> sa.Engine:
    # check_same_thread=False: the writer runs in trio worker threads, one at a time.
    engine = sa.create_engine(
        url, json_serializer=to_json, connect_args={"check_same_thread": False}
    )
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @sa.event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, _record: Any) -> None:
        # Transactions are begun explicitly below, not by the driver's heuristics.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def begin_transaction(connection: sa.Connection) -> None:
        connection.exec_driver_sql(begin)

    return engine


def switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """`PRAGMA journal_mode = WAL`, waiting out other connections switching at once.

    Connections switching one fresh file at the same moment each hold a read lock and
    want the write lock: SQLite sees a deadlock and answers "database is locked" at once
    instead of calling the busy handler. The failed statement drops its lock, so trying
    again (within the busy timeout) lets the first one finish.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def create_database(uri: str) -> None:
    """`database-create`: make the database and its tables; idempotent.

    Raises `SchemaVersionError` if the database exists with another schema version and
    `StoreError` for any other problem (bad URI, unreachable server, no permission).
    """
    url = parse_store_uri(uri)
    if url.get_backend_name() == "sqlite":
        _check_sqlite_directory(url)
    else:
        _create_postgres_database(url)
    # BEGIN IMMEDIATE on SQLite: two stores creating one fresh file at once queue for
    # the write lock (busy timeout) instead of failing to upgrade a read lock.
    engine = make_engine(url, immediate=True)
    try:
        with _connection_errors(url), engine.begin() as connection:
            found = _stored_version(connection)
            if found is None and _has_foreign_tables(connection):
                raise StoreError(
                    f"database {describe(url)} already has tables but no palaestrio schema "
                    "version (a palaestrAI database?); give palaestrio a database of its own"
                )
            if found is not None:
                _check_version(url, found)
            schema.metadata.create_all(connection)
            if found is None:
                connection.execute(
                    sa.insert(schema.palaestrio_schema).values(version=schema.SCHEMA_VERSION)
                )
    finally:
        engine.dispose()


def open_database(uri: str, *, immediate: bool = False) -> sa.Engine:
    """An engine for an existing palaestrio database of the current schema version.

    Raises `StoreError` naming the problem: a bad URI, a missing database file or
    database, an unreachable server, an uninitialised database, or (as
    `SchemaVersionError`) another schema version. A SQLite file that can only be read
    opens read-only unless `immediate` (the writer's engine) is asked for.
    """
    url = parse_store_uri(uri)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not path.is_file():
            raise StoreError(
                f"store database {describe(url)} does not exist: "
                "create it with `palaestrio database-create`"
            )
        if not immediate and _unreadable_in_wal_mode(path):
            return _checked(url, make_engine(_immutable(path)))
    return _checked(url, make_engine(url, immediate=immediate))


def _checked(url: URL, engine: sa.Engine) -> sa.Engine:
    try:
        with _connection_errors(url), engine.connect() as connection:
            found = _stored_version(connection)
            if found is None:
                raise StoreError(
                    f"{describe(url)} is not a palaestrio store database (no schema version): "
                    "create it with `palaestrio database-create`"
                )
            _check_version(url, found)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _unreadable_in_wal_mode(path: Path) -> bool:
    """No `-shm` file exists and none can be made: WAL mode cannot even read then."""
    if path.with_name(path.name + "-shm").exists():
        return False
    effective = os.access in os.supports_effective_ids  # whom the kernel checks
    return not os.access(path.parent, os.W_OK | os.X_OK, effective_ids=effective)


def _immutable(path: Path) -> URL:
    """The file as immutable: read without locks or a `-shm` file.

    Only for a file nobody here can write and without a `-wal` file (a cleanly closed
    store keeps nothing there), so it reads what was committed last.
    """
    return URL.create(
        "sqlite+pysqlite",
        database=f"file:{path.resolve()}",
        query={"immutable": "1", "uri": "true"},
    )


def _stored_version(connection: sa.Connection) -> int | None:
    if not sa.inspect(connection).has_table(schema.palaestrio_schema.name):
        return None
    versions = connection.execute(sa.select(schema.palaestrio_schema.c.version)).scalars()
    found = list(versions)
    if len(found) != 1:
        raise StoreError(
            f"table {schema.palaestrio_schema.name} must hold exactly one version, holds {found}"
        )
    return int(found[0])


def _check_version(url: URL, found: int) -> None:
    if found != schema.SCHEMA_VERSION:
        remedy = "use a new database or a palaestrio that matches it"
        if found < schema.SCHEMA_VERSION:
            remedy = f"upgrade it with `palaestrio database-migrate`, or {remedy}"
        raise SchemaVersionError(
            f"store database {describe(url)} has palaestrio schema version {found}, but this "
            f"palaestrio uses version {schema.SCHEMA_VERSION}: {remedy}"
        )


def _has_foreign_tables(connection: sa.Connection) -> bool:
    existing = set(sa.inspect(connection).get_table_names())
    return bool(existing & set(schema.metadata.tables))


def _check_sqlite_directory(url: URL) -> None:
    directory = Path(url.database or "").parent
    if not directory.is_dir():
        raise StoreError(
            f"cannot create store database {describe(url)}: directory {str(directory)!r} "
            "does not exist"
        )


def _create_postgres_database(url: URL) -> None:
    name = url.database or ""
    admin = make_engine(url.set(database="postgres"))
    try:
        with _connection_errors(url), admin.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists is None:
                quoted = connection.dialect.identifier_preparer.quote_identifier(name)
                try:
                    connection.exec_driver_sql(f"CREATE DATABASE {quoted}")
                except sqlalchemy.exc.ProgrammingError as error:
                    # Someone else created it in between: that is what we wanted.
                    if "already exists" not in str(error.orig):
                        raise
    finally:
        admin.dispose()


@contextmanager
def _connection_errors(url: URL) -> Iterator[None]:
    """Turns driver errors while opening a database into one `StoreError` naming it."""
    try:
        yield
    except sqlalchemy.exc.DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        hint = ""
        if "does not exist" in reason:
            hint = ": create it with `palaestrio database-create`"
        raise StoreError(f"cannot use store database {describe(url)}: {reason}{hint}") from error
