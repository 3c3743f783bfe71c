"""The store service over MDP and its sender, on SQLite and PostgreSQL: real broker, real
store (in this trio run or as its own process), real database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
import trio

from palaestrio.mdp import broker
from palaestrio.mdp.client import Client, open_client
from palaestrio.records import EpisodeStarted, Record
from palaestrio.store import delivery
from palaestrio.store import service as store_service
from palaestrio.store.engine import create_database, open_database
from palaestrio.store.errors import StoreError, StoreRejected
from palaestrio.store.messages import Acknowledged, Finished, Rejected, Running, encode
from palaestrio.store.queries import list_runs
from palaestrio.store.sender import StoreSink, open_store_sink, send_status
from store_support import (
    PostgresServer,
    count,
    phase_started,
    registered_writer,
    run_records,
    scheduled,
    step_records,
)

pytest_plugins = ["pg"]

HEARTBEAT = 0.2


@asynccontextmanager
async def running_broker(bind: str | None = None) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        endpoint: str = await nursery.start(
            partial(broker.serve, bind, heartbeat_interval=HEARTBEAT, heartbeat_liveness=3)
        )
        yield endpoint
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_store(uri: str, endpoint: str) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(store_service.serve, uri, endpoint, heartbeat_interval=HEARTBEAT)
        )
        yield
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def store_client(uri: str) -> AsyncIterator[Client]:
    """Broker, store service and a client, all in this trio run."""
    async with (
        running_broker() as endpoint,
        running_store(uri, endpoint),
        open_client(endpoint) as client,
    ):
        yield client


def store_argv(uri: str, endpoint: str, executor_id: str = "store-process") -> list[str]:
    return [
        sys.executable, "-m", "palaestrio.store",
        "--uri", uri, "--broker", endpoint, "--heartbeat-interval", str(HEARTBEAT),
        "--executor-id", executor_id,
    ]  # fmt: skip


async def emit_all(sink: StoreSink, records: list[Record]) -> None:
    for record in records:
        await sink.emit(record)


async def test_a_run_streams_through_the_service(store_database: str) -> None:
    records = list(run_records(phases=2, workers=2, episodes=3, steps=40))
    with trio.fail_after(60):
        async with store_client(store_database) as client:
            assert await send_status(client, scheduled("i-1")) == "scheduled"
            assert await send_status(client, Running("i-1", time.time())) == "running"
            async with open_store_sink(client, "i-1", max_batch=64) as sink:
                await emit_all(sink, records)
                assert await sink.status(Finished("i-1", time.time())) == "finished"
                assert sink.acknowledged == sink.emitted == len(records)
                assert sink.batches >= len(records) // 64
    engine = open_database(store_database)
    try:
        assert count(engine, "world_states") == 2 * 2 * 3 * 40
        assert count(engine, "muscle_actions") == 2 * 2 * 3 * 40 * 2
        [run] = list_runs(engine)
        assert (run.status, run.steps, run.episodes) == ("finished", 2 * 2 * 3 * 40, 12)
    finally:
        engine.dispose()


async def test_a_rejected_run_fails_alone(store_database: str) -> None:
    """A run whose batch violates a constraint gets an error naming it; others go on."""
    good = list(run_records(episodes=2, steps=60))
    bad_record = msgspec.structs.replace(step_records(0, 0, 1, 5, time.time())[0], step=-5)
    with trio.fail_after(60):
        async with store_client(store_database) as client:
            await send_status(client, scheduled("good", run_uid="run-good"))
            await send_status(client, scheduled("bad", run_uid="run-bad"))

            async def bad_run() -> None:
                with pytest.raises(StoreError, match="ck_world_states_step_index") as raised:
                    async with open_store_sink(client, "bad", max_batch=8) as sink:
                        await emit_all(sink, [phase_started(0), bad_record])
                        await sink.flush()
                assert "run instance 'bad'" in str(raised.value)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(bad_run)
                async with open_store_sink(client, "good", max_batch=16) as sink:
                    await emit_all(sink, good)
            with pytest.raises(StoreRejected, match="unknown run instance 'ghost'"):
                await send_status(client, Running("ghost", time.time()))
    engine = open_database(store_database)
    try:
        assert count(engine, "world_states") == 2 * 60
    finally:
        engine.dispose()


async def test_rows_appear_promptly_when_traffic_is_light(store_database: str) -> None:
    engine = open_database(store_database)
    try:
        with trio.fail_after(30):
            async with store_client(store_database) as client:
                await send_status(client, scheduled("i-1"))
                async with open_store_sink(client, "i-1") as sink:
                    await sink.emit(phase_started(0))
                    await sink.emit(EpisodeStarted(0, 0, 1, time.time()))
                    for step in range(3):
                        records = step_records(0, 0, 1, step, time.time())
                        emitted = trio.current_time()
                        await emit_all(sink, records)
                        while count(engine, "world_states") < step + 1:
                            await trio.sleep(0.02)
                        # The linger (0.2 s) sends them, not a full batch or the close:
                        # a bound well above it, as a loaded CI machine's commits can
                        # take most of a second.
                        assert trio.current_time() - emitted < 2.5
                        await trio.sleep(0.3)  # a slow simulation
    finally:
        engine.dispose()


class HeldUpStore:
    """A real store service called in-process, whose replies wait for `gate`."""

    def __init__(self, service: store_service.StoreService) -> None:
        self.service = service
        self.gate = trio.Event()

    async def request(self, service: str | bytes, *frames: bytes) -> list[bytes]:
        await self.gate.wait()
        return await self.service.handle(list(frames))


async def test_emit_waits_while_too_much_is_unacknowledged(store_database: str) -> None:
    """Back-pressure: with the store held up, emit stops returning at max_pending."""
    writer = registered_writer(store_database)
    engine = writer.engine
    store = HeldUpStore(store_service.StoreService(writer))
    store.gate.set()
    await send_status(store, scheduled("i-1"))
    store.gate = trio.Event()
    records = list(run_records(episodes=1, steps=100))
    with trio.fail_after(30):
        async with open_store_sink(store, "i-1", max_batch=10, max_pending=25) as sink:
            with trio.move_on_after(0.5):
                await emit_all(sink, records)
            assert sink.emitted == 25  # no more than max_pending left unacknowledged
            assert sink.acknowledged == 0
            store.gate.set()
            await emit_all(sink, records[sink.emitted :])
        assert sink.acknowledged == len(records)
    assert count(engine, "world_states") == 100
    await store.service.aclose()


async def test_aclose_flushes_and_closes(store_database: str) -> None:
    writer = registered_writer(store_database)
    engine = writer.engine
    store = HeldUpStore(store_service.StoreService(writer))
    store.gate.set()
    await send_status(store, scheduled("i-1"))
    records = list(run_records(episodes=1, steps=30))
    with trio.fail_after(30):
        async with open_store_sink(store, "i-1", linger=30) as sink:
            await emit_all(sink, records)
            await sink.aclose()
            assert sink.acknowledged == len(records)
            with pytest.raises(StoreError, match="store sink of run instance 'i-1' is closed"):
                await sink.emit(records[0])
    assert count(engine, "world_states") == 30
    await store.service.aclose()


@pytest.mark.postgres
async def test_the_sender_waits_out_a_database_restart(
    postgres_server: PostgresServer,
) -> None:
    """The store answers 'retryable' while PostgreSQL restarts; the sender tries again."""
    uri = postgres_server.uri()
    create_database(uri)
    records = list(run_records(workers=1, episodes=3, steps=200))
    with trio.fail_after(60):
        async with store_client(uri) as client:
            await send_status(client, scheduled("i-1"))
            async with open_store_sink(client, "i-1", max_batch=100, retry_after=2.0) as sink:
                half = len(records) // 2
                await emit_all(sink, records[:half])
                await sink.flush()
                await trio.to_thread.run_sync(postgres_server.restart)
                await emit_all(sink, records[half:])
            assert sink.acknowledged == len(records)
    engine = open_database(uri)
    try:
        assert count(engine, "world_states") == 3 * 200
    finally:
        engine.dispose()


async def test_batches_grow_under_load(store_database: str) -> None:
    records = list(run_records(episodes=4, steps=500))
    with trio.fail_after(60):
        async with store_client(store_database) as client:
            await send_status(client, scheduled("i-1"))
            async with open_store_sink(client, "i-1", max_batch=512) as sink:
                await emit_all(sink, records)
    # Emitted in a burst, batches leave full: few more than the minimum.
    assert sink.batches <= len(records) // 512 + 3


async def test_a_cancelled_block_still_stores_what_was_emitted(store_database: str) -> None:
    records = list(run_records(steps=50))
    with trio.fail_after(30):
        async with store_client(store_database) as client:
            await send_status(client, scheduled("i-1"))
            with trio.CancelScope() as scope:
                async with open_store_sink(client, "i-1", linger=30) as sink:
                    await emit_all(sink, records)
                    scope.cancel()
                    await trio.sleep(10)
            assert scope.cancelled_caught
            assert sink.acknowledged == len(records)
    engine = open_database(store_database)
    try:
        assert count(engine, "world_states") == 2 * 50
    finally:
        engine.dispose()


async def test_an_error_in_the_block_comes_out_unwrapped(store_database: str) -> None:
    with trio.fail_after(30):
        async with store_client(store_database) as client:
            await send_status(client, scheduled("i-1"))
            with pytest.raises(ValueError, match="simulation broke"):
                async with open_store_sink(client, "i-1", linger=30) as sink:
                    await emit_all(sink, list(run_records(steps=5)))
                    raise ValueError("simulation broke")
            assert sink.acknowledged == sink.emitted  # stored before the error went on


async def test_sigkilled_store_is_restarted_and_nothing_is_lost(
    store_database: str, tmp_path: Path
) -> None:
    """The store process dies mid-stream; a new one takes over; the sender resends.

    Every record is in the database exactly once (the natural keys are unique, and the
    counts equal what was emitted).
    """
    records = list(run_records(workers=2, episodes=5, steps=300))
    kills = 0
    with trio.fail_after(100):
        async with running_broker(f"ipc://{tmp_path}/broker") as endpoint, trio.open_nursery() as n:
            first = await n.start(
                partial(trio.run_process, store_argv(store_database, endpoint), check=False)
            )
            async with open_client(endpoint) as client:
                await send_status(client, scheduled("i-1"))
                async with open_store_sink(client, "i-1", max_batch=200, retry_after=1.0) as sink:
                    emitting = trio.Event()

                    async def killer() -> None:
                        nonlocal kills
                        while sink.acknowledged < len(records) // 4:
                            await trio.sleep(0.01)
                        first.send_signal(signal.SIGKILL)
                        await first.wait()
                        kills += 1
                        await trio.sleep(0.5)  # the stream goes on against no store
                        await n.start(
                            partial(
                                trio.run_process, store_argv(store_database, endpoint), check=False
                            )
                        )
                        emitting.set()

                    n.start_soon(killer)
                    await emit_all(sink, records)
                    await emitting.wait()
                    await sink.flush()
                    assert sink.acknowledged == len(records)
            n.cancel_scope.cancel()
    assert kills == 1 and first.returncode == -signal.SIGKILL
    engine = open_database(store_database)
    try:
        steps = 2 * 5 * 300
        assert count(engine, "world_states") == steps
        assert count(engine, "muscle_actions") == 2 * steps
        assert count(engine, "experiment_run_episodes") == 2 * 5
        with engine.connect() as connection:
            distinct = connection.execute(
                sa.text(
                    "SELECT count(*) FROM (SELECT DISTINCT environment_id, episode, step_index"
                    " FROM world_states) AS keys"
                )
            ).scalar_one()
        assert distinct == steps
    finally:
        engine.dispose()


async def test_the_sender_survives_a_broker_restart(store_database: str, tmp_path: Path) -> None:
    records = list(run_records(workers=1, episodes=4, steps=200))
    endpoint = f"ipc://{tmp_path}/broker"
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            broker_scope = trio.CancelScope()

            async def first_broker(task_status: trio.TaskStatus[None]) -> None:
                with broker_scope:
                    async with running_broker(endpoint):
                        task_status.started()
                        await trio.sleep_forever()

            await nursery.start(first_broker)
            async with running_store(store_database, endpoint), open_client(endpoint) as client:
                await send_status(client, scheduled("i-1"))
                async with open_store_sink(client, "i-1", max_batch=100, retry_after=1.0) as sink:
                    half = len(records) // 2
                    await emit_all(sink, records[:half])
                    await sink.flush()
                    broker_scope.cancel()
                    await emit_all(sink, records[half:])
                    await trio.sleep(0.3)
                    async with running_broker(endpoint):
                        await sink.flush()
                        assert sink.acknowledged == len(records)
    engine = open_database(store_database)
    try:
        assert count(engine, "world_states") == 4 * 200
    finally:
        engine.dispose()


async def test_store_process_with_a_bad_uri_says_why(tmp_path: Path) -> None:
    with trio.fail_after(30):
        missing = f"sqlite:///{tmp_path}/missing.db"
        done = await trio.run_process(
            store_argv(missing, f"ipc://{tmp_path}/nobroker"), capture_stderr=True, check=False
        )
    assert done.returncode == 2
    assert b"does not exist" in done.stderr and b"database-create" in done.stderr


async def test_store_process_stops_on_sigterm(store_database: str, tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with (
            running_broker(f"ipc://{tmp_path}/broker") as endpoint,
            trio.open_nursery() as nursery,
        ):
            process = await nursery.start(
                partial(
                    trio.run_process,
                    store_argv(store_database, endpoint),
                    stdout=subprocess.PIPE,
                    check=False,
                )
            )
            assert process.stdout is not None
            ready = await process.stdout.receive_some()
            assert b"palaestrio store ready" in ready
            async with open_client(endpoint) as client:
                assert await send_status(client, scheduled("i-1")) == "scheduled"
            process.send_signal(signal.SIGTERM)
            await process.wait()
    assert process.returncode == 0
    assert os.environ.get("PALAESTRIO_TEST_TAG")  # the guard watches this test's children


async def test_batches_take_what_queued_up_while_the_store_was_slow(store_database: str) -> None:
    """A batch leaves at `send_at` records, but takes all that is queued (up to
    `max_batch`): while a commit is slow, the next batch grows and fewer commits follow."""
    writer = registered_writer(store_database)
    store = HeldUpStore(store_service.StoreService(writer))
    store.gate.set()
    await send_status(store, scheduled("i-1"))
    store.gate = trio.Event()
    records = list(run_records(episodes=1, steps=1000))  # 3,004 records
    with trio.fail_after(30):
        async with open_store_sink(
            store, "i-1", send_at=100, max_batch=1000, max_pending=4000
        ) as sink:
            await emit_all(sink, records)  # the first batch waits at the gate meanwhile
            store.gate.set()
        assert sink.acknowledged == len(records)
    # The first batch, then full ones: not 3,004 / 100.
    assert sink.batches <= 1 + -(-len(records) // 1000)
    assert count(writer.engine, "world_states") == 1000
    await store.service.aclose()


class RefusingStore:
    """Answers "retryable" until `accepting`; notes when each request came."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.accepting = False
        self.arrived = trio.Event()

    async def request(self, service: str | bytes, *frames: bytes) -> list[bytes]:
        self.times.append(trio.current_time())
        self.arrived.set()
        self.arrived = trio.Event()
        if self.accepting:
            return [encode(Acknowledged(written=1))]
        return [encode(Rejected("database or disk is full", retryable=True))]


async def test_a_hastened_sink_resends_a_refused_batch_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the disk is full the pauses between resends grow; a run that stops must
    not wait one out (^C during store retries): `hasten` sends again at once."""
    monkeypatch.setattr(delivery, "MAX_RETRY_PAUSE", 600.0)
    store = RefusingStore()
    with trio.fail_after(60):
        async with open_store_sink(store, "i-1", linger=0, retry_after=600) as sink:
            await sink.emit(EpisodeStarted(0, 0, 1, time.time()))
            while len(store.times) < 7:  # pauses 0.05 s, 0.1 s, ... 1.6 s: the next 3.2 s
                await store.arrived.wait()
            store.accepting = True
            hastened = trio.current_time()
            sink.hasten()
            await store.arrived.wait()
            assert trio.current_time() - hastened < 1.5, "the grown pause was waited out"
