"""A store that fails loudly (issue 16, findings 1-3), through the real program.

Each test runs `palaestrio experiment-start` as a process on a long run (it cannot end
by itself within the test), injects a storage fault once steps are stored, and checks
the exit status, what the store holds, the exit time and (the leak guard) that no
process is left. Small file systems are tmpfs mounts (root only); "read-only" is the
immutable flag on the store's files (a read-only remount is refused while SQLite holds
them open), which the file system enforces even for root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from executor_support import stored_rows, write_experiment

HERE = Path(__file__).parent
ENDLESS = 10**7
"""Steps of a run that cannot finish within a test."""


def store_env(**limits: object) -> dict[str, str]:
    return {f"PALAESTRIO_{key.upper()}": str(value) for key, value in limits.items()}


@contextlib.asynccontextmanager
async def start_program(
    db: Path, run_file: Path, env: dict[str, str]
) -> AsyncIterator[trio.Process]:
    """`palaestrio experiment-start` on `run_file`; SIGKILLed if the block leaves early
    (its children follow it: they hold its lifeline)."""
    program = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "palaestrio",
            "experiment-start",
            str(run_file),
            "--store",
            f"sqlite:///{db}",
            "--plain",
            "--progress-interval",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    try:
        yield program
    finally:
        if program.returncode is None:
            program.kill()
        with trio.move_on_after(5, shield=True):
            await program.wait()
            await trio.sleep(1)  # its children see the lifeline close
        for stream in (program.stdout, program.stderr):
            if stream is not None:
                await stream.aclose()


def world_states(db: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            return int(connection.execute("SELECT count(*) FROM world_states").fetchone()[0])
    except sqlite3.Error:
        return 0


def instances(db: Path) -> list[tuple[str, str, str | None]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        rows = connection.execute("SELECT uid, status, status_reason FROM experiment_run_instances")
        return [(str(uid), str(status), reason) for uid, status, reason in rows]


async def wait_for_rows(db: Path, minimum: int) -> None:
    while world_states(db) < minimum:
        await trio.sleep(0.05)


def store_process(program: trio.Process) -> int:
    """The pid of the program's store process (a child of the program)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        # setproctitle may have rewritten its command line already
        if ppid == program.pid and (b"palaestrio.store" in argv or argv[0] == b"palaestrio[store]"):
            return int(entry.name)
    raise AssertionError("the program has no store process")


async def finish(program: trio.Process) -> tuple[int, str, str]:
    """Waits for the program's end; (exit status, stdout, stderr)."""
    assert program.stdout is not None and program.stderr is not None
    out, err = bytearray(), bytearray()

    async def read(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        async for chunk in stream:
            into += chunk

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read, program.stdout, out)
        nursery.start_soon(read, program.stderr, err)
        await program.wait()
    assert program.returncode is not None
    return program.returncode, out.decode(), err.decode()


@contextlib.contextmanager
def mounted_tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size`, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        for file in mount.iterdir():
            subprocess.run(["chattr", "-i", str(file)], capture_output=True)
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path, "2m") as mount:
        yield mount


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[Path]:
    """A loop-mounted 64 MiB ext4 file system, which (unlike tmpfs) enforces the
    immutable flag on descriptors opened before it was set, mapped memory included."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        pytest.skip("a loop-mounted ext4 needs root and mkfs.ext4")
    image, mount = tmp_path / "ext4.img", tmp_path / "fs"
    mount.mkdir()
    with image.open("wb") as file:
        file.truncate(64 * 2**20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    done = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot loop-mount a file system here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        for file in mount.iterdir():
            subprocess.run(["chattr", "-i", str(file)], capture_output=True)
        subprocess.run(["umount", "-l", str(mount)], check=True)


async def test_a_deleted_database_is_an_error_naming_the_file(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run_file = write_experiment(tmp_path, "deleted", max_iter=ENDLESS)
    with trio.fail_after(90):
        async with start_program(db, run_file, {}) as program:
            await wait_for_rows(db, 100)
            db.unlink()
            deleted_at = time.monotonic()
            code, out, err = await finish(program)
    took = time.monotonic() - deleted_at
    assert code == 1, err
    assert f"the store database file {str(db)!r} was deleted" in err
    assert "the store failed" in err
    assert "finished" not in out and "error" in out
    assert not db.exists()  # nothing made a new, empty store in its place
    assert took < 20


async def test_a_full_disk_ends_the_run_error_with_the_databases_message(small_fs: Path) -> None:
    db = small_fs / "runs.db"
    run_file = write_experiment(small_fs.parent, "full", max_iter=ENDLESS)
    env = store_env(store_write_retries=3, store_write_retry_seconds=5)
    with trio.fail_after(120):
        async with start_program(db, run_file, env) as program:
            code, out, err = await finish(program)
    assert code == 1, err
    assert "database or disk is full" in err
    assert "the store failed" in err
    [(_, status, _)] = instances(db)
    # The store could not say so itself: the database keeps what it last could write.
    assert status == "running"
    # Whether a batch fitted before the disk filled depends on batch sizes: not checked.
    assert "error" in out and "finished" not in out


def make_immutable(directory: Path) -> None:
    for file in directory.iterdir():
        subprocess.run(["chattr", "+i", str(file)], check=True)


async def test_a_store_that_refuses_writes_ends_the_runs_error(ext4: Path) -> None:
    db = ext4 / "runs.db"
    run_file = write_experiment(ext4.parent, "refused", max_iter=ENDLESS)
    env = store_env(store_write_retries=1000, store_write_retry_seconds=3)
    with trio.fail_after(90):
        async with start_program(db, run_file, env) as program:
            await wait_for_rows(db, 100)
            make_immutable(ext4)
            refused_at = time.monotonic()
            code, out, err = await finish(program)
    took = time.monotonic() - refused_at
    assert code == 1, err
    # SQLite says so, or its mapped -shm raises SIGBUS (finding 3): both end it.
    assert "the store failed" in err
    assert "Operation not permitted" in err or "disk I/O error" in err or "SIGBUS" in err, err
    [(uid, status, _)] = instances(db)
    assert status == "running"
    assert stored_rows(db, uid)[0] >= 100
    assert "error" in out and "finished" not in out
    assert took < 30


async def test_sigint_while_the_store_retries_is_prompt(small_fs: Path) -> None:
    """The governor's sink waits 30 s before each resend (a pause grown while the disk
    was full): the stopping run resends at once, and the stopping store fails it."""
    db = small_fs / "runs.db"
    run_file = write_experiment(
        small_fs.parent,
        "interrupted",
        environment="executor_components:PatientSenderEnvironment",
        max_iter=ENDLESS,
    )
    env = store_env(store_write_retries=10**6, store_write_retry_seconds=3600)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    with trio.fail_after(90):
        async with start_program(db, run_file, env) as program:
            while os.statvfs(small_fs).f_bavail > 0:
                await trio.sleep(0.05)
            await trio.sleep(1.5)  # the store refused a batch by now: the sink pauses
            program.send_signal(signal.SIGINT)
            interrupted_at = time.monotonic()
            code, out, err = await finish(program)
            took = time.monotonic() - interrupted_at
    assert code == 130, err
    assert "it failed while the executor was stopping" in err, err
    assert "finished" not in out
    assert "Traceback" not in err
    [(_, status, _)] = instances(db)
    assert status == "running"
    print(f"exit {took:.2f} s after SIGINT")
    assert took <= 1.0, f"exited {took:.2f} s after SIGINT"


@pytest.mark.parametrize("signum", [signal.SIGBUS, signal.SIGKILL])
async def test_a_crashed_store_is_restarted_and_the_run_stored_exactly_once(
    tmp_path: Path, signum: signal.Signals
) -> None:
    db = tmp_path / "runs.db"
    steps = 20_000
    run_file = write_experiment(tmp_path, "crashed", max_iter=steps)
    with trio.fail_after(120):
        async with start_program(db, run_file, {}) as program:
            await wait_for_rows(db, 100)
            os.kill(store_process(program), signum)
            code, out, err = await finish(program)
    assert code == 0, err
    assert "finished" in out
    assert f"the store process ended (killed by {signum.name}" in err
    assert "restarting it" in err
    [(uid, status, reason)] = instances(db)
    assert (status, reason) == ("finished", None)
    assert stored_rows(db, uid) == (steps, steps)


async def test_a_store_that_keeps_crashing_ends_the_runs_error(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run_file = write_experiment(tmp_path, "crashing", max_iter=ENDLESS)
    env = store_env(store_restarts=1, store_restart_seconds=600)
    with trio.fail_after(120):
        async with start_program(db, run_file, env) as program:
            await wait_for_rows(db, 100)
            first = store_process(program)
            os.kill(first, signal.SIGKILL)
            while True:  # the restarted one
                await trio.sleep(0.05)
                with contextlib.suppress(AssertionError):
                    second = store_process(program)
                    if second != first:
                        break
            await wait_for_rows(db, world_states(db) + 100)
            os.kill(second, signal.SIGKILL)
            killed_at = time.monotonic()
            code, out, err = await finish(program)
    took = time.monotonic() - killed_at
    assert code == 1, err
    assert "after 1 restarts within 600 s; not restarted again" in err
    [(_, status, _)] = instances(db)
    assert status == "running"  # nothing could tell the database otherwise
    assert "error" in out and "finished" not in out
    assert took < 30


def test_the_writer_never_acknowledges_a_write_into_a_deleted_file(tmp_path: Path) -> None:
    """In-process, the check that the program test above relies on."""
    from palaestrio.store.engine import create_database
    from palaestrio.store.errors import StoreFailed
    from palaestrio.store.messages import RecordBatch
    from store_support import registered_writer, run_records, scheduled

    db = tmp_path / "store.db"
    create_database(f"sqlite:///{db}")
    writer = registered_writer(f"sqlite:///{db}")
    try:
        writer.apply(scheduled("instance"))
        records = list(run_records(steps=4))
        writer.apply(RecordBatch("instance", 1, records[:5]))
        moved = db.rename(tmp_path / "moved.db")
        db.write_bytes(b"")  # another file under the name
        with pytest.raises(StoreFailed, match="was replaced by another file"):
            writer.apply(RecordBatch("instance", 2, records[5:]))
        moved.unlink()
        with pytest.raises(StoreFailed, match=rf"file {str(db)!r} was deleted"):
            writer.apply(RecordBatch("instance", 2, records[5:]))
    finally:
        writer.close()


def test_the_write_budget_gives_up_after_its_count_or_its_time() -> None:
    from palaestrio.store.write_budget import WriteBudget

    now = [0.0]
    budget = WriteBudget(retries=2, seconds=10, clock=lambda: now[0])
    assert budget.failed() is None and budget.failed() is None
    assert budget.failed() == "it failed 3 times in a row"
    budget.succeeded()
    assert budget.failed() is None
    now[0] = 10.0
    assert budget.failed() == "writes failed for 10.0 s"
    budget.succeeded()
    budget.hurry()
    assert budget.failed() == "it failed while the executor was stopping"
