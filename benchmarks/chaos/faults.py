"""Fault injectors: each runs in a thread of its own against one executor (`Scene`)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from palaestrio import proctree

from .plan import Fault

POLL = 0.05
"""Seconds between looks (each walks /proc: kept light on a shared machine)."""
FILLER = "filler"
GOVERNOR = b"palaestrio[governor:"
FULL_SIZE = "32m"


@dataclass
class Scene:
    """One executor under test and what the faults did to it."""

    process: subprocess.Popen[bytes]
    store_dir: Path
    db: Path
    started: float
    broker: str | None = None
    hang_marker: Path | None = None
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ended: threading.Event = field(default_factory=threading.Event)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Fault kind -> why it could not be injected here."""
    stopped_at: float | None = None
    """When a fault last told the executor to stop (monotonic)."""
    executor_killed: bool = False
    signals: set[int] = field(default_factory=set)
    """Signals the faults sent to the executor."""
    killed_runs: set[str] = field(default_factory=set)
    """Runs whose governor (or the store serving them) was SIGKILLed."""
    hung_for: float | None = None
    """Seconds the hanging component had blocked when the executor was told to stop."""
    struck: set[str] = field(default_factory=set)
    """Fault kinds that struck (others were skipped, or the executor ended first)."""
    locked: tuple[float, float] | None = None
    """When the db-locked fault held the database's write lock (monotonic: from, to)."""
    finished_at_deletion: dict[str, int] | None = None
    """Run uid -> steps of each run stored finished when the store file was deleted
    (None: not deleted, or not read)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, text: str) -> None:
        with self.lock:
            self.notes.append(f"{time.monotonic() - self.started:6.2f}s {text}")

    def sleep(self, seconds: float) -> bool:
        """Sleeps unless the executor ends first; True if it is still running."""
        return not self.ended.wait(seconds)

    def strike(self, fault: Fault, text: str) -> None:
        self.struck.add(fault.kind)
        self.note(text)

    def signal_executor(self, signum: int, what: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signum)
        self.stopped_at = time.monotonic()
        self.signals.add(signum)
        self.note(what)


def titled(scene: Scene, prefix: bytes) -> dict[int, str]:
    """Descendants of the executor whose title starts with `prefix`: pid -> title."""
    found = {}
    for pid in proctree.descendants(scene.process.pid):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(prefix):
            found[pid] = title.decode(errors="replace")
    return found


def wait_for(scene: Scene, found: Callable[[], bool], bound: float = 120.0) -> bool:
    deadline = time.monotonic() + bound
    while not found():
        if not scene.sleep(POLL) or time.monotonic() > deadline:
            return False
    return True


def signal_fault(signum: int) -> Callable[[Scene, Fault], None]:
    def inject(scene: Scene, fault: Fault) -> None:
        if fault.amount and not wait_for(scene, lambda: bool(titled(scene, GOVERNOR))):
            return
        if scene.sleep(fault.delay):
            scene.signal_executor(signum, f"{signal.Signals(signum).name} to the executor")
            scene.struck.add(fault.kind)
            scene.executor_killed |= signum == signal.SIGKILL

    return inject


def kill_titled(prefix: bytes, kind: str) -> Callable[[Scene, Fault], None]:
    """SIGKILLs one random descendant titled `prefix` once one exists."""

    def inject(scene: Scene, fault: Fault) -> None:
        targets: dict[int, str] = {}

        def present() -> bool:
            targets.update(titled(scene, prefix))
            return bool(targets)

        if not wait_for(scene, present):
            if kind == "kill-store":
                scene.skipped[kind] = "no palaestrio[store] process seen (a store in the executor)"
            else:
                scene.note(f"{kind}: nothing to kill before the executor ended")
            return
        if not scene.sleep(fault.delay):
            return
        targets = titled(scene, prefix) or targets
        pid = random.Random(fault.seed).choice(sorted(targets))
        proctree.kill([pid])
        title = targets[pid]
        if prefix == GOVERNOR:
            scene.killed_runs.add(title.removeprefix(GOVERNOR.decode()).removesuffix("]"))
        else:
            scene.killed_runs.add("*")
        scene.strike(fault, f"SIGKILL to {title} ({pid})")

    return inject


def broker_frames(scene: Scene, fault: Fault) -> None:
    if scene.broker is None or not scene.sleep(fault.delay):
        return
    rng = random.Random(fault.seed)
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 100_000)
    try:
        socket.connect(scene.broker)
        for n in range(int(fault.amount)):
            if n % 200 == 0 and not scene.sleep(0.01):
                break
            with contextlib.suppress(zmq.Again):
                socket.send_multipart(random_frames(rng), flags=zmq.NOBLOCK)
        scene.strike(fault, f"{int(fault.amount)} random messages into the broker")
    finally:
        socket.close()
        context.term()


def random_frames(rng: random.Random) -> list[bytes]:
    """Garbage with a chance of looking like MDP: empty delimiter, protocol, command."""
    frames = [rng.randbytes(rng.randint(0, 48)) for _ in range(rng.randint(0, 5))]
    if rng.random() < 0.5:
        header = [b"", rng.choice([b"MDPC01", b"MDPW01", b"MDPX"]), bytes([rng.randint(0, 7)])]
        frames = header + frames
    return frames or [b""]


def hang(scene: Scene, fault: Fault) -> None:
    marker = scene.hang_marker
    assert marker is not None
    if not wait_for(scene, marker.exists) or not scene.sleep(fault.delay):
        scene.note("hang: the component never blocked")
        return
    scene.hung_for = time.time() - float(marker.read_text() or "0")
    scene.signal_executor(signal.SIGINT, f"SIGINT to the executor, hung for {scene.hung_for:.2f}s")
    scene.struck.add(fault.kind)


def store_then_sleep(scene: Scene, fault: Fault) -> bool:
    """Waits for the store file to exist, then `fault.delay`; False if the executor
    ended first."""
    return wait_for(scene, scene.db.exists) and scene.sleep(fault.delay)


def db_locked(scene: Scene, fault: Fault) -> None:
    if not store_then_sleep(scene, fault):
        return
    try:
        connection = sqlite3.connect(scene.db, timeout=5, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            began = time.monotonic()
            scene.strike(fault, f"database locked for {fault.amount:.1f}s")
            scene.sleep(fault.amount)
            connection.execute("ROLLBACK")
            scene.locked = (began, time.monotonic())
        finally:
            connection.close()
    except sqlite3.Error as error:
        scene.note(f"db-locked: {error}")


def db_readonly(scene: Scene, fault: Fault) -> None:
    if fault.amount:
        scene.strike(fault, "store directory read-only from the start")
        return  # `prepare_store_dir` made it so before the executor started
    if store_then_sleep(scene, fault):
        mount("-o", "remount,ro,bind", str(scene.store_dir))
        scene.strike(fault, "store directory remounted read-only")


def db_full(scene: Scene, fault: Fault) -> None:
    if not store_then_sleep(scene, fault):
        return
    with contextlib.suppress(OSError), (scene.store_dir / FILLER).open("wb") as file:
        chunk = b"\0" * (1 << 20)
        while True:
            file.write(chunk)
            file.flush()
    scene.strike(fault, "store file system full")


def db_deleted(scene: Scene, fault: Fault) -> None:
    """Deletes the store file, holding its write lock meanwhile: what it held then is
    exactly what was committed before (a batch stored whole before the deletion lost
    nothing, and may end with exit 0)."""
    if not store_then_sleep(scene, fault):
        return
    suffixes = ["", "-wal", "-shm"] if fault.seed % 2 else [""]
    connection = sqlite3.connect(scene.db, timeout=5, isolation_level=None)
    try:
        try:
            connection.execute("BEGIN IMMEDIATE")
            scene.finished_at_deletion = finished_steps(connection)
        except sqlite3.Error as error:
            scene.note(f"db-deleted: what it held is unknown: {error}")
        for suffix in suffixes:
            with contextlib.suppress(FileNotFoundError):
                scene.db.with_name(scene.db.name + suffix).unlink()
        scene.strike(fault, f"deleted {', '.join(scene.db.name + s for s in suffixes)}")
    finally:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        connection.close()


def finished_steps(connection: sqlite3.Connection) -> dict[str, int]:
    """Run uid -> steps stored, for each run instance stored finished."""
    rows = connection.execute(
        """SELECT r.uid, (SELECT count(*) FROM world_states w
                          JOIN environments e ON w.environment_id = e.id
                          JOIN experiment_run_phases p ON e.experiment_run_phase_id = p.id
                          WHERE p.experiment_run_instance_id = i.id)
           FROM experiment_run_instances i
           JOIN experiment_runs r ON i.experiment_run_id = r.id
           WHERE i.status = 'finished'"""
    ).fetchall()
    return {str(run): int(steps) for run, steps in rows}


INJECTORS: dict[str, Callable[[Scene, Fault], None]] = {
    "kill-governor": kill_titled(GOVERNOR, "kill-governor"),
    "kill-store": kill_titled(b"palaestrio[store]", "kill-store"),
    "kill-executor": signal_fault(signal.SIGKILL),
    "sigint": signal_fault(signal.SIGINT),
    "sigterm": signal_fault(signal.SIGTERM),
    "sighup": signal_fault(signal.SIGHUP),
    "broker-frames": broker_frames,
    "hang": hang,
    "db-locked": db_locked,
    "db-readonly": db_readonly,
    "db-full": db_full,
    "db-deleted": db_deleted,
}


def mount(*args: str) -> str | None:
    """Runs mount(8); the error it printed, or None."""
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    except OSError as error:  # no mount(8) here
        return str(error)
    if done.returncode == 0:
        return None
    return done.stderr.strip() or f"exit {done.returncode}"


def prepare_store_dir(store_dir: Path, db: Path, faults: list[Fault]) -> str | None:
    """Puts the store's directory on the mount a fault needs; why not, or None."""
    store_dir.mkdir(parents=True)
    kinds = {fault.kind: fault for fault in faults}
    if "db-full" in kinds:
        return mount("-t", "tmpfs", "-o", f"size={FULL_SIZE}", "tmpfs", str(store_dir))
    readonly = kinds.get("db-readonly")
    if readonly is None:
        return None
    if readonly.amount:
        create = [
            sys.executable,
            "-m",
            "palaestrio",
            "database-create",
            "--store",
            f"sqlite:///{db}",
        ]
        subprocess.run(create, check=True, capture_output=True)
    why_not = mount("--bind", str(store_dir), str(store_dir))
    if why_not is None and readonly.amount:
        why_not = mount("-o", "remount,ro,bind", str(store_dir))
    return why_not


def relieve_store_dir(store_dir: Path, kinds: set[str]) -> None:
    """Takes the faults off the store's directory (space freed, writable again) so what
    the store holds can be read."""
    if "db-readonly" in kinds:
        mount("-o", "remount,rw,bind", str(store_dir))
    (store_dir / FILLER).unlink(missing_ok=True)


def unmount_store_dir(store_dir: Path, kinds: set[str]) -> None:
    if kinds & {"db-full", "db-readonly"}:
        subprocess.run(["umount", "-l", str(store_dir)], capture_output=True, check=False)
