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

import sqlalchemy as sa

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
from palaestrio.store.messages import Scheduled

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

    def restart(self) -> None:
        """Stops the server (dropping every connection) and starts it again."""
        pg_ctl = str(self.bindir / "pg_ctl")
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
