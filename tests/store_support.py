"""Helpers for the store tests and benchmark: record streams shaped like real runs, and a
throw-away PostgreSQL server.

`PostgresServer` runs initdb/pg_ctl in a temporary directory and listens only on a unix
socket there. Run as root, the server runs as the `postgres` system user (initdb refuses
root). Its environment never carries the test suite's per-test leak tag.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from palaestrio import proctree
from palaestrio.records import (
    AgentSpec,
    ComponentSpec,
    EnvironmentSpec,
    EpisodeEnded,
    EpisodeStarted,
    MuscleAction,
    PhaseEnded,
    PhaseStarted,
    Record,
    WorldState,
)
from palaestrio.store import schema
from palaestrio.store.engine import open_database
from palaestrio.store.messages import Scheduled
from palaestrio.store.ownership import register_executor
from palaestrio.store.writer import StoreWriter

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


class ProcessGuard(Protocol):
    """What the test suite's leak guard offers (`leak_guard.LeakGuard`)."""

    def snapshot(self) -> set[int]: ...

    def allow(self, pids: set[int]) -> None: ...


class PostgresServer:
    """One PostgreSQL server in its own temporary directory.

    With a `guard`, the server processes (after every start and restart) are allowed
    to outlive the test that started them.
    """

    def __init__(
        self, bindir: Path, *, durable: bool = False, guard: ProcessGuard | None = None
    ) -> None:
        self.bindir = bindir
        self.durable = durable
        self.guard = guard
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

    @contextlib.contextmanager
    def _allowed(self) -> Iterator[None]:
        before = self.guard.snapshot() if self.guard is not None else set()
        yield
        if self.guard is not None:
            self.guard.allow(self.guard.snapshot() - before)

    def start(self) -> None:
        with self._allowed():
            self._start()

    def _start(self) -> None:
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

    def restart(self) -> None:
        """Stops the server (dropping every connection) and starts it again."""
        pg_ctl = str(self.bindir / "pg_ctl")
        with self._allowed():
            self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "restart")

    def uri(self, database: str | None = None) -> str:
        """A URI for `database` (default: a fresh name) on this server."""
        name = database or f"t_{uuid.uuid4().hex[:12]}"
        return f"postgresql://postgres@/{name}?host={self.directory}"


ENVIRONMENT = "dummy_env"
AGENTS = ("mighty_defender", "evil_attacker")


def scheduled(
    instance_uid: str, run_uid: str = "run-1", experiment_uid: str = "exp-1"
) -> Scheduled:
    return Scheduled(
        instance_uid=instance_uid,
        run_uid=run_uid,
        experiment_uid=experiment_uid,
        time=time.time(),
        document=f"uid: {run_uid}\nexperiment_uid: {experiment_uid}\nseed: 1\n",
        user="tester",
    )


def phase_started(phase: int = 0, *, workers: int = 1, episodes: int = 1) -> PhaseStarted:
    return PhaseStarted(
        phase=phase,
        name=f"phase-{phase}",
        mode="train",
        workers=workers,
        episodes=episodes,
        environments=[
            EnvironmentSpec(
                uid=ENVIRONMENT,
                environment=ComponentSpec("palaestrio.simulation:DummyEnvironment", {"max": 9}),
            )
        ],
        agents=[
            AgentSpec(
                name=name,
                brain=ComponentSpec("palaestrio.simulation:RandomBrain"),
                muscle=ComponentSpec("palaestrio.simulation:RandomMuscle"),
                objective=ComponentSpec("palaestrio.simulation:DummyObjective"),
                sensors=[f"{ENVIRONMENT}.sensor_{i}" for i in range(10)],
                actuators=[f"{ENVIRONMENT}.actuator_0"],
            )
            for name in AGENTS
        ],
        simulation=ComponentSpec("palaestrio.simulation:VanillaSimulation"),
        config={"mode": "train", "episodes": episodes, "worker": workers},
        walltime=time.time(),
    )


def step_records(phase: int, worker: int, episode: int, step: int, now: float) -> list[Record]:
    """One step of a 2-agent DummyEnvironment: 1 world state + 2 muscle actions."""
    sensors = {f"{ENVIRONMENT}.sensor_{i}": float(step + i) for i in range(10)}
    setpoints = {f"{ENVIRONMENT}.actuator_0": float(step % 7)}
    records: list[Record] = [
        WorldState(
            phase=phase,
            worker=worker,
            episode=episode,
            step=step,
            environment=ENVIRONMENT,
            simtime=step,
            sensors=sensors,
            setpoints=setpoints,
            rewards={"reward": 0.5},
            done=False,
            walltime=now,
        )
    ]
    for agent in AGENTS:
        records.append(
            MuscleAction(
                phase=phase,
                worker=worker,
                episode=episode,
                step=step,
                agent=agent,
                sensors=sensors,
                setpoints=setpoints,
                rewards={"reward": 0.5},
                objective=0.5,
                done=False,
                walltime=now,
            )
        )
    return records


def run_records(
    *, phases: int = 1, workers: int = 1, episodes: int = 2, steps: int = 10
) -> Iterator[Record]:
    """The record stream of a whole run, in the order the step loop emits it."""
    for phase in range(phases):
        yield phase_started(phase, workers=workers, episodes=episodes)
        for worker in range(workers):
            for episode in range(1, episodes + 1):
                yield EpisodeStarted(phase, worker, episode, time.time())
                for step in range(steps):
                    yield from step_records(phase, worker, episode, step, time.time())
                yield EpisodeEnded(phase, worker, episode, steps, time.time())
        yield PhaseEnded(phase, time.time())


def count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def registered_writer(uri: str, executor_id: str = "test-executor") -> StoreWriter:
    """A writer for executor `executor_id`, registered as this process (lease 10 min)."""
    engine = open_database(uri, immediate=True)
    register_executor(engine, executor_id, lease_seconds=600)
    return StoreWriter(engine, executor_id)


def set_owner(engine: sa.Engine, executor_id: str, **values: Any) -> None:
    """Overwrites columns of executor `executor_id`'s row (to play another process)."""
    table = schema.palaestrio_executors
    with engine.begin() as connection:
        done = connection.execute(
            sa.update(table).where(table.c.id == executor_id).values(**values)
        )
    assert done.rowcount == 1, f"no executor {executor_id}"


def dead_process() -> tuple[int, int]:
    """The pid and start time of a real process that has exited."""
    process = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    started = proctree.start_time(process.pid)
    process.kill()
    process.wait()
    assert started is not None
    return process.pid, started


def instance_status(engine: sa.Engine, uid: str) -> tuple[str, str | None]:
    table = schema.experiment_run_instances
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(table.c.status, table.c.status_reason).where(table.c.uid == uid)
        ).one()
    return row.status, row.status_reason
