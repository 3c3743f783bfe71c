"""Run ownership: executors registered with a lease, lost runs reaped, and a store that
refuses runs it does not own; real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa
import trio

from palaestrio import proctree
from palaestrio.mdp import broker
from palaestrio.mdp.client import Client, open_client
from palaestrio.records import Record
from palaestrio.status import EXECUTOR_LOST, RunStatus
from palaestrio.store import messages, schema
from palaestrio.store import service as store_service
from palaestrio.store.engine import create_database, open_database
from palaestrio.store.errors import LeaseLost, RequestNotOwned, RunNotOwned, StoreError
from palaestrio.store.messages import Finished, RecordBatch, Rejected, Running
from palaestrio.store.ownership import DEFAULT_LEASE_SECONDS, reap_lost_runs, register_executor
from palaestrio.store.queries import list_runs
from palaestrio.store.sender import deliver, open_store_sink, send_status
from palaestrio.store.service import StoreService
from palaestrio.store.writer import StoreWriter
from store_support import (
    PostgresServer,
    count,
    dead_process,
    instance_status,
    registered_writer,
    run_records,
    scheduled,
    set_owner,
)

pytest_plugins = ["pg"]

HEARTBEAT = 0.2
_executors = schema.palaestrio_executors


def executor_row(engine: sa.Engine, executor_id: str) -> sa.Row[tuple[object, ...]]:
    with engine.connect() as connection:
        return connection.execute(sa.select(_executors).where(_executors.c.id == executor_id)).one()


def utc(value: datetime.datetime) -> datetime.datetime:
    return value.replace(tzinfo=value.tzinfo or datetime.UTC).astimezone(datetime.UTC)


def owner_of(engine: sa.Engine, instance_uid: str) -> str | None:
    table = schema.experiment_run_instances
    with engine.connect() as connection:
        owner = connection.execute(
            sa.select(table.c.executor_id).where(table.c.uid == instance_uid)
        ).scalar_one()
    return None if owner is None else str(owner)


def write_run(writer: StoreWriter, uid: str, records: list[Record], *, running: bool) -> None:
    writer.apply(scheduled(uid, run_uid=f"run-{uid}"))
    if running:
        writer.apply(Running(uid, time.time()))
    writer.apply(RecordBatch(uid, 1, records))


@asynccontextmanager
async def store_at(
    uri: str, executor_id: str, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> AsyncIterator[str]:
    """A broker and a store service for `executor_id`, in this trio run."""
    async with trio.open_nursery() as nursery:
        endpoint: str = await nursery.start(
            partial(broker.serve, None, heartbeat_interval=HEARTBEAT, heartbeat_liveness=3)
        )
        await nursery.start(
            partial(
                store_service.serve,
                uri,
                endpoint,
                executor_id=executor_id,
                lease_seconds=lease_seconds,
                heartbeat_interval=HEARTBEAT,
            )
        )
        yield endpoint
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def store_client(
    uri: str, executor_id: str, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> AsyncIterator[Client]:
    async with store_at(uri, executor_id, lease_seconds) as endpoint, open_client(endpoint) as c:
        yield c


# --- registration and lease ----------------------------------------------------------


async def test_serve_registers_its_executor_and_renews_the_lease(store_database: str) -> None:
    engine = open_database(store_database)
    try:
        with trio.fail_after(30):
            async with store_client(store_database, "exec-a", lease_seconds=0.6) as client:
                row = executor_row(engine, "exec-a")
                assert (row.host, row.pid) == (socket.gethostname(), os.getpid())
                assert row.pid_started == proctree.start_time(os.getpid())
                assert row.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
                assert row.ended_at is None
                first_lease = utc(row.lease_expires_at)
                assert first_lease > datetime.datetime.now(datetime.UTC)
                await trio.sleep(0.5)  # a renewal every 0.2 s
                assert utc(executor_row(engine, "exec-a").lease_expires_at) > first_lease
                assert await send_status(client, scheduled("i-1")) == RunStatus.SCHEDULED
                assert owner_of(engine, "i-1") == "exec-a"
        assert executor_row(engine, "exec-a").ended_at is not None  # a clean exit
    finally:
        engine.dispose()


def test_an_executor_id_held_by_a_live_process_is_refused(store_database: str) -> None:
    writer = registered_writer(store_database, "exec-a")
    sleeper = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        start = proctree.start_time(sleeper.pid)
        set_owner(writer.engine, "exec-a", pid=sleeper.pid, pid_started=start)
        with pytest.raises(StoreError, match=rf"exec-a is in use .*pid {sleeper.pid}"):
            register_executor(writer.engine, "exec-a", 30)
        sleeper.kill()
        sleeper.wait()
        register_executor(writer.engine, "exec-a", 30)  # its holder is gone: a restart
        assert executor_row(writer.engine, "exec-a").pid == os.getpid()
    finally:
        sleeper.kill()
        sleeper.wait()
        writer.close()


async def test_a_short_database_outage_is_survived_a_long_one_loses_the_lease(
    tmp_path: Path,
) -> None:
    """Renewals fail while the executors table is renamed away (a real SQLite error)."""
    uri = f"sqlite:///{tmp_path}/store.db"
    create_database(uri)
    lost: list[BaseException] = []

    def rename(old: str, new: str) -> None:
        with contextlib.closing(sqlite3.connect(tmp_path / "store.db", timeout=30)) as db:
            db.execute(f"ALTER TABLE {old} RENAME TO {new}")
            db.commit()

    async def store(task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            endpoint: str = await nursery.start(broker.serve)
            try:
                await store_service.serve(
                    uri, endpoint, executor_id="exec-a", lease_seconds=0.9, task_status=task_status
                )
            except LeaseLost as error:
                lost.append(error)
            nursery.cancel_scope.cancel()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(store)
            rename("palaestrio_executors", "away")
            await trio.sleep(0.5)  # shorter than the lease: renewals fail, the store stays
            rename("away", "palaestrio_executors")
            await trio.sleep(0.7)
            assert not lost
            rename("palaestrio_executors", "away")
            await trio.sleep(2.0)  # longer than the lease
            assert len(lost) == 1
            assert "could not renew the executor's lease" in str(lost[0])
            nursery.cancel_scope.cancel()


# --- reaping -------------------------------------------------------------------------


def test_runs_of_a_dead_executor_are_reaped_and_live_ones_untouched(store_database: str) -> None:
    records = list(run_records(episodes=2, steps=10))  # 20 steps
    names = ("dead", "alive", "reused", "child")
    writers = {name: registered_writer(store_database, name) for name in names}
    engine = writers["dead"].engine
    sleeper = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        for name in names:
            write_run(writers[name], f"{name}-running", records, running=True)
        writers["dead"].apply(scheduled("dead-scheduled", run_uid="run-dead-scheduled"))
        write_run(writers["alive"], "legacy-running", records, running=True)
        write_run(writers["alive"], "alive-finished", records, running=True)
        writers["alive"].apply(Finished("alive-finished", time.time()))
        pid, started = dead_process()
        set_owner(engine, "dead", pid=pid, pid_started=started)
        # This process's pid, but a start time that is not this process's: pid reused.
        set_owner(engine, "reused", pid_started=(proctree.start_time(os.getpid()) or 0) + 1)
        set_owner(engine, "child", pid=sleeper.pid, pid_started=proctree.start_time(sleeper.pid))
        long_ago = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
        for name in names:  # on this host the process decides, not the lease
            set_owner(engine, name, lease_expires_at=long_ago)
        with engine.begin() as connection:  # a run of a palaestrio before ownership
            connection.execute(
                sa.update(schema.experiment_run_instances)
                .where(schema.experiment_run_instances.c.uid == "legacy-running")
                .values(executor_id=None)
            )

        lost = reap_lost_runs(engine)

        assert sorted((run.instance_uid, run.status, run.steps) for run in lost) == [
            ("dead-running", RunStatus.RUNNING, 20),
            ("dead-scheduled", RunStatus.SCHEDULED, 0),
            ("reused-running", RunStatus.RUNNING, 20),
        ]
        lost_reason = ("error", "executor lost (20 steps stored)")
        assert instance_status(engine, "dead-running") == lost_reason
        assert instance_status(engine, "reused-running") == lost_reason
        assert instance_status(engine, "dead-scheduled") == (
            "error",
            f"{EXECUTOR_LOST} (0 steps stored)",
        )
        assert f"process {pid} " in next(r.why for r in lost if r.instance_uid == "dead-running")
        for untouched in ("alive-running", "child-running", "legacy-running"):
            assert instance_status(engine, untouched) == ("running", None)
        assert instance_status(engine, "alive-finished") == ("finished", None)
        assert [run.ended is not None for run in list_runs(engine, status="error")] == [True] * 3
        assert reap_lost_runs(engine) == []  # done once
    finally:
        sleeper.kill()
        sleeper.wait()
        for writer in writers.values():
            writer.close()


def test_an_expired_lease_on_another_host_is_reaped(store_database: str) -> None:
    """Across hosts only the lease tells (on PostgreSQL in the server's clock)."""
    now = datetime.datetime.now(datetime.UTC)
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    hour = datetime.timedelta(hours=1)
    owners = {
        "far-expired": {"host": "elsewhere.example", "lease_expires_at": now - hour},
        "far-valid": {"host": "elsewhere.example", "lease_expires_at": now + hour},
        # This host's name, another boot: rebooted if the owner started before this boot...
        "rebooted": {"boot_id": str(uuid.uuid4()), "started_at": now - 1000 * 24 * hour},
        # ...another machine of the same name if it started after it: the lease decides.
        "namesake": {"boot_id": str(uuid.uuid4()), "lease_expires_at": now + hour},
    }
    writers = {name: registered_writer(store_database, name) for name in owners}
    engine = writers["far-expired"].engine
    try:
        for name, values in owners.items():
            writers[name].apply(scheduled(f"{name}-run", run_uid=f"run-{name}"))
            writers[name].apply(Running(f"{name}-run", time.time()))
            set_owner(engine, name, pid=999_999_999, **values)
        lost = reap_lost_runs(engine)
        assert sorted(run.instance_uid for run in lost) == ["far-expired-run", "rebooted-run"]
        assert "lease of executor far-expired" in lost[0].why
        assert instance_status(engine, "far-valid-run") == ("running", None)
        assert instance_status(engine, "namesake-run") == ("running", None)
        assert instance_status(engine, "far-expired-run")[0] == "error"
    finally:
        for writer in writers.values():
            writer.close()
    del boot_id


async def test_serve_reaps_lost_runs_when_it_starts(
    store_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    writer = registered_writer(store_database, "dead")
    try:
        write_run(writer, "orphan", list(run_records(steps=7)), running=True)
        pid, started = dead_process()
        set_owner(writer.engine, "dead", pid=pid, pid_started=started)
        with caplog.at_level(logging.WARNING, logger="palaestrio.store.service"):
            with trio.fail_after(30):
                async with store_client(store_database, "next"):
                    status = instance_status(writer.engine, "orphan")
        assert status == ("error", "executor lost (14 steps stored)")
        assert "run instance 'orphan'" in caplog.text and "marked error" in caplog.text
    finally:
        writer.close()


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """As `nobody` (effective ids) when run as root, who may write a 0444 file."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def warm_up(path: Path) -> None:
    """Runs reading and reaping on a copy, so no module is first imported as `nobody`
    (who cannot read the interpreter's own directory here)."""
    with tempfile.TemporaryDirectory() as directory:
        copy = Path(directory) / "copy.db"
        shutil.copy(path, copy)
        engine = open_database(f"sqlite:///{copy}")
        try:
            reap_lost_runs(engine)
            list_runs(engine)
        finally:
            engine.dispose()


@pytest.mark.parametrize("read_only", ["file", "directory"])
def test_reaping_a_read_only_sqlite_store_writes_nothing(read_only: str) -> None:
    # Not tmp_path: pytest's base directory is private to its user (nobody cannot enter).
    directory = Path(tempfile.mkdtemp(prefix="palaestrio-ro-"))
    directory.chmod(0o755)
    path = directory / "store.db"
    uri = f"sqlite:///{path}"
    try:
        create_database(uri)
        writer = registered_writer(uri, "dead")
        write_run(writer, "orphan", list(run_records(steps=3)), running=True)
        pid, started = dead_process()
        set_owner(writer.engine, "dead", pid=pid, pid_started=started)
        writer.close()  # the last connection out checkpoints: no -wal or -shm left
        assert sorted(p.name for p in directory.iterdir()) == ["store.db"]
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        path.chmod(0o444)
        if read_only == "directory":
            directory.chmod(0o555)
        elif os.geteuid() == 0:
            os.chown(directory, 65534, 65534)  # nobody may make -shm next to the file
        warm_up(path)
        with unprivileged():
            engine = open_database(uri)
            try:
                assert reap_lost_runs(engine) == []
                [run] = list_runs(engine)  # and the CLI can list
                assert (run.instance_uid, run.status, run.steps) == ("orphan", "running", 6)
                with pytest.raises(StoreError, match="read-only"):
                    register_executor(engine, "next", 30)
            finally:
                engine.dispose()
        directory.chmod(0o755)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        engine = open_database(uri)
        try:
            assert instance_status(engine, "orphan") == ("running", None)
        finally:
            engine.dispose()
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


@pytest.mark.postgres
def test_reaping_with_a_select_only_role_writes_nothing(postgres_server: PostgresServer) -> None:
    uri = postgres_server.uri()
    create_database(uri)
    writer = registered_writer(uri, "far")
    role = f"reader_{uuid.uuid4().hex[:8]}"
    try:
        write_run(writer, "orphan", list(run_records(steps=3)), running=True)
        expired = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
        set_owner(writer.engine, "far", host="elsewhere.example", lease_expires_at=expired)
        with writer.engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
            connection.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        reader = open_database(uri.replace("postgres@", f"{role}@"))
        try:
            assert reap_lost_runs(reader) == []
            assert [run.status for run in list_runs(reader)] == ["running"]
        finally:
            reader.dispose()
        assert instance_status(writer.engine, "orphan") == ("running", None)
        assert [run.instance_uid for run in reap_lost_runs(writer.engine)] == ["orphan"]
    finally:
        writer.close()


# --- refusing runs it does not own ---------------------------------------------------


async def test_a_store_refuses_runs_it_does_not_own(store_database: str) -> None:
    """Executor B's store takes nothing for executor A's live run, nor for unknown runs."""
    engine = open_database(store_database)
    records = list(run_records(steps=5))
    try:
        with trio.fail_after(60):
            async with (
                store_client(store_database, "exec-a") as a,
                store_client(store_database, "exec-b") as b,
            ):
                await send_status(a, scheduled("i-a"))
                await send_status(a, Running("i-a", time.time()))
                async with open_store_sink(a, "i-a") as sink:
                    for record in records:
                        await sink.emit(record)
                rows = {table: count(engine, table) for table in schema.metadata.tables}

                with pytest.raises(RunNotOwned, match="which executor exec-a owns"):
                    await deliver(b, RecordBatch("i-a", 9, records))
                with pytest.raises(RunNotOwned, match="unknown run instance 'ghost'"):
                    await deliver(b, RecordBatch("ghost", 1, records))
                with pytest.raises(RunNotOwned, match="exec-a"):
                    await send_status(b, Finished("i-a", time.time()))
                with pytest.raises(RunNotOwned, match="which is alive"):
                    await send_status(b, scheduled("i-a"))
                with pytest.raises(RunNotOwned, match="which executor exec-a owns"):
                    async with open_store_sink(b, "i-a") as sink:  # a governor's sink
                        for record in records:
                            await sink.emit(record)
                with pytest.raises(RunNotOwned, match="'i-a' cannot be stored"):
                    await sink.emit(records[0])  # the sink stays failed, as not owned

                assert {table: count(engine, table) for table in schema.metadata.tables} == rows
                assert instance_status(engine, "i-a") == ("running", None)
                assert await send_status(a, Finished("i-a", time.time())) == "finished"
    finally:
        engine.dispose()


def test_the_refusal_is_marked_not_owned_and_never_retryable(store_database: str) -> None:
    owner, other = registered_writer(store_database, "a"), registered_writer(store_database, "b")
    try:
        owner.apply(scheduled("i-a"))
        batch = RecordBatch("i-a", 1, list(run_records(steps=1)))
        reply = StoreService(other).apply_frames([messages.encode(batch)])
        assert isinstance(reply, Rejected)
        assert (reply.not_owned, reply.retryable) == (True, False)
        assert "batch 1 (12 records) of run instance 'i-a' refused" in reply.message
    finally:
        owner.close()
        other.close()


def test_a_run_of_a_dead_executor_can_be_scheduled_again(store_database: str) -> None:
    """Its owner is gone: the next executor's `scheduled` takes the instance over."""
    first, second = registered_writer(store_database, "a"), registered_writer(store_database, "b")
    try:
        first.apply(scheduled("i-1"))
        with pytest.raises(RequestNotOwned, match=r"owned by executor a .*which is alive"):
            second.apply(scheduled("i-1"))
        pid, started = dead_process()
        set_owner(first.engine, "a", pid=pid, pid_started=started)
        assert second.apply(scheduled("i-1")).status == RunStatus.SCHEDULED
        assert owner_of(first.engine, "i-1") == "b"
        assert second.apply(Running("i-1", time.time())).status == RunStatus.RUNNING
        with pytest.raises(RequestNotOwned, match="which executor b owns"):
            first.apply(Finished("i-1", time.time()))
    finally:
        first.close()
        second.close()
