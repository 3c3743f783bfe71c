"""The store's writer, status lifecycle and queries, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
import itertools
import math
import time
from collections.abc import Iterator

import msgspec
import pytest
import sqlalchemy as sa
import sqlalchemy.exc

from palaestrio.records import EpisodeStarted, Record, WorldState
from palaestrio.status import RunStatus
from palaestrio.store import schema
from palaestrio.store.engine import open_database
from palaestrio.store.errors import RequestRejected
from palaestrio.store.lifecycle import next_status
from palaestrio.store.messages import (
    Acknowledged,
    Cancelled,
    Failed,
    Finished,
    RecordBatch,
    Rejected,
    Running,
    StoreRequest,
    Summarize,
)
from palaestrio.store.queries import UnknownRun, list_runs, run_details
from palaestrio.store.service import StoreService
from palaestrio.store.step_rows import TimestampText
from palaestrio.store.writer import StoreWriter
from store_support import (
    AGENTS,
    ENVIRONMENT,
    count,
    phase_started,
    registered_writer,
    run_records,
    scheduled,
    step_records,
)

pytest_plugins = ["pg"]


@pytest.fixture
def writer(store_database: str) -> Iterator[StoreWriter]:
    writer = registered_writer(store_database)
    try:
        yield writer
    finally:
        writer.close()


def batches(uid: str, records: list[Record], size: int) -> list[RecordBatch]:
    return [
        RecordBatch(uid, number, records[start : start + size])
        for number, start in enumerate(range(0, len(records), size), start=1)
    ]


def write_run(writer: StoreWriter, uid: str, records: list[Record], size: int = 500) -> None:
    for batch in batches(uid, records, size):
        assert writer.apply(batch) == Acknowledged(written=len(batch.records))


def instance_row(engine: sa.Engine, uid: str) -> sa.Row[tuple[object, ...]]:
    table = schema.experiment_run_instances
    with engine.connect() as connection:
        return connection.execute(sa.select(table).where(table.c.uid == uid)).one()


# --- lifecycle ---------------------------------------------------------------------------

S, R, F, E, C = schema.STATUSES


@pytest.mark.parametrize(
    ("current", "event", "after"),
    [
        (S, R, R),
        (S, F, F),  # ended before it was ever seen running (started_at stays NULL)
        (S, E, E),
        (S, C, C),
        (R, F, F),
        (R, E, E),
        (R, C, C),
        (S, S, None),  # duplicate
        (R, R, None),  # duplicate
        (R, S, None),  # late scheduled
        *[(end, event, None) for end in (F, E, C) for event in schema.STATUSES],  # final
    ],
)
def test_next_status(current: RunStatus, event: RunStatus, after: RunStatus | None) -> None:
    assert next_status(current, event) == after


# --- records -----------------------------------------------------------------------------


def test_row_counts_are_exact(writer: StoreWriter, store_engine: sa.Engine) -> None:
    phases, workers, episodes, steps = 2, 2, 3, 17
    writer.apply(scheduled("i-1"))
    records = list(run_records(phases=phases, workers=workers, episodes=episodes, steps=steps))
    write_run(writer, "i-1", records, size=97)
    all_steps = phases * workers * episodes * steps
    assert count(store_engine, "world_states") == all_steps * 1
    assert count(store_engine, "muscle_actions") == all_steps * len(AGENTS)
    assert count(store_engine, "experiment_run_episodes") == phases * workers * episodes
    assert count(store_engine, "experiment_run_phases") == phases
    assert count(store_engine, "environments") == phases * workers
    assert count(store_engine, "agents") == phases * len(AGENTS)
    [run] = list_runs(store_engine)
    assert (run.phases, run.episodes, run.steps) == (phases, phases * workers * episodes, all_steps)


def test_summaries_are_what_list_runs_says(writer: StoreWriter, store_engine: sa.Engine) -> None:
    writer.apply(scheduled("i-1"))
    writer.apply(scheduled("i-2", run_uid="run-2"))
    write_run(writer, "i-1", list(run_records(episodes=2, steps=5)))
    writer.apply(Finished("i-1", time.time()))
    reply = writer.apply(Summarize(["i-1", "i-2", "unknown"]))
    assert reply.runs == list_runs(store_engine)
    assert [(run.status, run.episodes, run.steps) for run in reply.runs] == [
        (RunStatus.FINISHED, 2, 10),
        (RunStatus.SCHEDULED, 0, 0),
    ]
    # What the executor receives, through msgpack.
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(reply), type=Acknowledged) == reply


def test_resent_batches_change_nothing(writer: StoreWriter, store_engine: sa.Engine) -> None:
    writer.apply(scheduled("i-1"))
    records = list(run_records(workers=2, episodes=2, steps=25))
    write_run(writer, "i-1", records, size=40)
    before = {table: count(store_engine, table) for table in schema.metadata.tables}
    write_run(writer, "i-1", records, size=40)  # the same batches again
    write_run(writer, "i-1", records, size=33)  # and cut differently
    assert {table: count(store_engine, table) for table in schema.metadata.tables} == before
    assert before["world_states"] == 2 * 2 * 25


def test_values_survive_the_round_trip(writer: StoreWriter, store_engine: sa.Engine) -> None:
    writer.apply(scheduled("i-1"))
    walltime = 1_700_000_000.123456
    state = WorldState(
        phase=0,
        worker=0,
        episode=1,
        step=3,
        environment=ENVIRONMENT,
        simtime={"ticks": 3, "hour": 1.5},
        sensors={"a": 1.5, "b": [1, 2], "c": "text", "d": None, "nan": math.nan},
        setpoints={"x": True},
        rewards={"r": -2.25},
        done=True,
        walltime=walltime,
    )
    write_run(writer, "i-1", [phase_started(0), state])
    ws = schema.world_states
    with store_engine.connect() as connection:
        row = connection.execute(sa.select(ws)).one()
    assert row.state_dump == {"a": 1.5, "b": [1, 2], "c": "text", "d": None, "nan": None}
    assert (row.setpoints, row.rewards, row.done) == ({"x": True}, {"r": -2.25}, True)
    assert (row.simtime_ticks, row.simtime) == (None, {"ticks": 3, "hour": 1.5})
    assert (row.episode, row.step_index, row.mode) == (1, 3, "train")
    stored = row.walltime.replace(tzinfo=row.walltime.tzinfo or datetime.UTC)
    assert stored == datetime.datetime.fromtimestamp(walltime, datetime.UTC)


def test_timestamp_text() -> None:
    text = TimestampText("")
    for seconds in (0.0, 1_700_000_000.0000004, 1_700_000_000.9999996, 1_700_000_001.5, -1.25):
        expected = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
        assert text(seconds) == expected.strftime("%Y-%m-%d %H:%M:%S.%f")
    assert TimestampText("+00")(86_400.5) == "1970-01-02 00:00:00.500000+00"


def test_unknown_environment_rejects_the_whole_batch(
    writer: StoreWriter, store_engine: sa.Engine
) -> None:
    writer.apply(scheduled("i-1"))
    good = [phase_started(0), *step_records(0, 0, 1, 0, time.time())]
    stray = msgspec.structs.replace(good[1], environment="no_such_env", step=1)
    with pytest.raises(RequestRejected, match=r"environment 'no_such_env'.*instance 'i-1'"):
        writer.apply(RecordBatch("i-1", 1, [*good, stray]))
    assert count(store_engine, "world_states") == 0
    assert count(store_engine, "experiment_run_phases") == 0  # rolled back with the rest
    write_run(writer, "i-1", good)  # the writer goes on
    assert count(store_engine, "world_states") == 1


def test_records_before_their_phase_are_rejected(writer: StoreWriter) -> None:
    writer.apply(scheduled("i-1"))
    with pytest.raises(RequestRejected, match=r"phase 4 of run instance 'i-1'.*no phase_started"):
        writer.apply(RecordBatch("i-1", 1, [EpisodeStarted(4, 0, 1, time.time())]))


def test_records_of_an_unknown_instance_are_rejected(writer: StoreWriter) -> None:
    with pytest.raises(RequestRejected, match="unknown run instance 'nobody'"):
        writer.apply(RecordBatch("nobody", 1, [phase_started(0)]))


def test_constraint_violation_is_an_error_reply_and_others_continue(
    writer: StoreWriter, store_engine: sa.Engine
) -> None:
    service = StoreService(writer)

    def apply(request: StoreRequest) -> Acknowledged | Rejected:
        return service.apply_frames([msgspec.msgpack.encode(request)])

    apply(scheduled("bad", run_uid="run-bad"))
    apply(scheduled("good", run_uid="run-good"))
    negative = msgspec.structs.replace(step_records(0, 0, 1, 0, time.time())[0], step=-1)
    reply = apply(RecordBatch("bad", 7, [phase_started(0), negative]))
    assert isinstance(reply, Rejected)
    assert not reply.retryable
    assert "batch 7 (2 records) of run instance 'bad'" in reply.message
    assert "ck_world_states_step_index" in reply.message
    records = list(run_records(steps=5))
    assert apply(RecordBatch("good", 1, records)) == Acknowledged(written=len(records))
    assert count(store_engine, "world_states") == 2 * 5
    garbage = service.apply_frames([b"\x93not a request"])
    assert isinstance(garbage, Rejected)
    assert "malformed store request" in garbage.message
    assert isinstance(service.apply_frames([b"a", b"b"]), Rejected)


# --- status ------------------------------------------------------------------------------


def test_status_lifecycle_records_each_transition_once(
    writer: StoreWriter, store_engine: sa.Engine
) -> None:
    t0 = 1_700_000_000.0
    first = scheduled("i-1")
    assert writer.apply(msgspec.structs.replace(first, time=t0)).status == "scheduled"
    assert writer.apply(Running("i-1", t0 + 1)).status == "running"
    assert writer.apply(Running("i-1", t0 + 2)).status == "running"  # duplicate
    assert writer.apply(msgspec.structs.replace(first, time=t0 + 3)).status == "running"
    assert writer.apply(Finished("i-1", t0 + 4)).status == "finished"
    assert writer.apply(Failed("i-1", t0 + 5, "exit code 1")).status == "finished"  # final
    assert writer.apply(Running("i-1", t0 + 6)).status == "finished"  # late
    row = instance_row(store_engine, "i-1")
    utc = datetime.UTC

    def at(seconds: float) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(seconds, utc)

    def read(value: datetime.datetime) -> datetime.datetime:
        return value.replace(tzinfo=value.tzinfo or utc)

    assert row.status == "finished"
    assert (read(row.created_at), read(row.started_at), read(row.ended_at)) == (
        at(t0),
        at(t0 + 1),
        at(t0 + 4),
    )
    assert row.status_reason is None
    assert count(store_engine, "experiment_run_instances") == 1


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [
        (Finished("i-1", 2.0), "finished", None),
        (Failed("i-1", 2.0, "could not start: no such module"), "error", "could not start"),
        (Cancelled("i-1", 2.0, "cancelled before it started"), "cancelled", "cancelled"),
    ],
)
def test_terminal_status_straight_after_scheduled(
    writer: StoreWriter,
    store_engine: sa.Engine,
    event: Finished | Failed | Cancelled,
    status: str,
    reason: str | None,
) -> None:
    writer.apply(msgspec.structs.replace(scheduled("i-1"), time=1.0))
    assert writer.apply(event).status == status
    assert writer.apply(Running("i-1", 3.0)).status == status
    row = instance_row(store_engine, "i-1")
    assert row.started_at is None  # never seen running
    assert row.ended_at is not None
    assert (row.status_reason or "").startswith(reason or "") and bool(row.status_reason) == bool(
        reason
    )


def test_status_of_an_unknown_instance_is_rejected(writer: StoreWriter) -> None:
    with pytest.raises(RequestRejected, match="status 'running' for unknown run instance 'x'"):
        writer.apply(Running("x", 1.0))


def test_cancelled_run_keeps_its_reason(writer: StoreWriter, store_engine: sa.Engine) -> None:
    writer.apply(scheduled("i-1"))
    writer.apply(Running("i-1", time.time()))
    assert writer.apply(Cancelled("i-1", time.time(), "SIGINT #1")).status == "cancelled"
    [run] = list_runs(store_engine)
    assert (run.status, run.reason) == ("cancelled", "SIGINT #1")
    assert run.started is not None and run.ended is not None and run.started <= run.ended


def test_changed_document_keeps_the_old_run(writer: StoreWriter, store_engine: sa.Engine) -> None:
    writer.apply(scheduled("i-1"))
    changed = msgspec.structs.replace(scheduled("i-2"), document="uid: run-1\nseed: 2\n")
    writer.apply(changed)
    runs = schema.experiment_runs
    with store_engine.connect() as connection:
        uids = connection.execute(sa.select(runs.c.uid).order_by(runs.c.id)).scalars().all()
        documents = connection.execute(sa.select(runs.c.document_json).order_by(runs.c.id))
        assert [d for (d,) in documents][-1] == {"uid": "run-1", "seed": 2}
    assert uids[0].startswith("run-1 [") and uids[1] == "run-1"
    assert [run.run_uid for run in list_runs(store_engine)] == [uids[0], "run-1"]


def test_a_concurrent_reader_sees_committed_batches(
    writer: StoreWriter, store_database: str
) -> None:
    """A second engine (as a user watching the database) reads while the writer writes."""
    writer.apply(scheduled("i-1"))
    reader = open_database(store_database)
    try:
        records = list(run_records(steps=30))
        for number, batch in enumerate(batches("i-1", records, 20), start=1):
            writer.apply(batch)
            assert count(reader, "world_states") + count(reader, "muscle_actions") >= number
    finally:
        reader.dispose()


# --- queries -----------------------------------------------------------------------------


def test_run_details(writer: StoreWriter, store_engine: sa.Engine) -> None:
    writer.apply(scheduled("i-1", run_uid="run-a", experiment_uid="exp-a"))
    writer.apply(Running("i-1", time.time()))
    done = list(run_records(phases=1, workers=2, episodes=2, steps=4))
    # Phase 1 is in progress: an episode that has not ended counts the steps so far.
    now = time.time()
    ongoing = [
        phase_started(1, workers=1, episodes=5),
        EpisodeStarted(1, 0, 1, now),
        *itertools.chain.from_iterable(step_records(1, 0, 1, step, now) for step in range(3)),
    ]
    write_run(writer, "i-1", [*done, *ongoing])
    details = run_details(store_engine, "i-1")
    assert details.run.run_uid == "run-a" and details.run.experiment_uid == "exp-a"
    assert (details.run.status, details.run.phases, details.run.episodes) == ("running", 2, 5)
    assert details.run.steps == 2 * 2 * 4 + 3
    assert details.user == "tester" and "uid: run-a" in (details.document or "")
    first, second = details.phases
    assert (first.number, first.name, first.mode, first.workers) == (0, "phase-0", "train", 2)
    assert (first.episodes, first.steps, second.episodes, second.steps) == (4, 16, 1, 3)
    assert first.environments == [ENVIRONMENT] and first.agents == sorted(AGENTS)
    assert first.ended is not None and second.ended is None
    assert run_details(store_engine, "run-a").run.instance_uid == "i-1"  # by run uid
    with pytest.raises(UnknownRun, match="no run instance and no run 'nope'"):
        run_details(store_engine, "nope")


def test_list_runs_filters(writer: StoreWriter, store_engine: sa.Engine) -> None:
    writer.apply(scheduled("i-1", run_uid="run-a"))
    writer.apply(scheduled("i-2", run_uid="run-b"))
    writer.apply(scheduled("i-3", run_uid="run-b"))
    writer.apply(Running("i-3", time.time()))
    assert [r.instance_uid for r in list_runs(store_engine)] == ["i-1", "i-2", "i-3"]
    assert [r.instance_uid for r in list_runs(store_engine, run_uid="run-b")] == ["i-2", "i-3"]
    assert [r.instance_uid for r in list_runs(store_engine, status="running")] == ["i-3"]
    assert list_runs(store_engine, experiment_uid="other") == []
    assert [r.steps for r in list_runs(store_engine)] == [0, 0, 0]


def test_database_error_leaves_the_writer_usable(
    writer: StoreWriter, store_engine: sa.Engine
) -> None:
    writer.apply(scheduled("i-1"))
    negative = msgspec.structs.replace(step_records(0, 0, 1, 0, time.time())[0], step=-1)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        writer.apply(RecordBatch("i-1", 1, [phase_started(0), negative]))
    write_run(writer, "i-1", list(run_records(steps=3)))
    assert count(store_engine, "world_states") == 2 * 3
