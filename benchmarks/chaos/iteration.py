"""One iteration: a batch through `palaestrio experiment-start` with its faults, then
the invariant checks."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from executor_support import write_experiment
from leak_guard import TAG_VARIABLE, LeakGuard
from palaestrio import proctree

from . import faults
from . import resume as resumption
from .invariants import Outcome, Violation, check
from .plan import ENDING, MOUNTING, Plan, RunPlan

DB_NAME = "runs.db"
HERE = Path(__file__).resolve().parent
IMPORT_PATH = os.pathsep.join(str(p) for p in (HERE.parent, HERE.parent.parent / "tests"))


@dataclass(frozen=True)
class Bounds:
    run: float
    """Seconds the batch may take to end by itself before the harness stops it."""
    exit: float
    """Seconds from a stop (signal, SIGKILL, harness's SIGINT) to the executor's exit."""


@dataclass
class Result:
    plan: Plan
    outcome: Outcome
    violations: list[Violation]
    notes: list[str]
    skipped: dict[str, str]
    struck: set[str]


def run_iteration(
    plan: Plan, root: Path, tag: str, bounds: Bounds, guard: LeakGuard, resume: bool = False
) -> Result:
    """Runs `plan`; with `resume`, a failed batch is then resumed (`chaos.resume`)."""
    directory = root / f"iteration-{plan.index}"
    store_dir = directory / "store"
    kinds = {fault.kind for fault in plan.faults}
    directory.mkdir(parents=True)
    skipped: dict[str, str] = {}
    why_not = faults.prepare_store_dir(store_dir, store_dir / DB_NAME, plan.faults)
    if why_not is not None:
        for kind in kinds & MOUNTING:
            skipped[kind] = f"cannot mount: {why_not}"
    try:
        before = guard.snapshot()
        scene = _start(plan, directory, store_dir, tag)
        scene.skipped.update(skipped)
        try:
            outcome = _supervise(plan, scene, bounds, kinds)
            if outcome.returncode is not None:
                # Processes still alive a second after the executor exited.
                outcome.leftovers = guard.leftovers(before, tag)
        finally:
            scene.ended.set()
            _kill_everything(scene, guard, before, tag)
        faults.relieve_store_dir(store_dir, kinds)
        violations = check(outcome, bounds.exit)
        if resume and outcome.returncode != 0:
            violations += _resume(plan, scene, bounds, guard, tag)
    finally:
        faults.unmount_store_dir(store_dir, kinds)
    shutil.rmtree(directory, ignore_errors=True)
    return Result(plan, outcome, violations, scene.notes, scene.skipped, scene.struck)


def _resume(
    plan: Plan, scene: faults.Scene, bounds: Bounds, guard: LeakGuard, tag: str
) -> list[Violation]:
    if scene.hang_marker is not None:
        # The fault was the first batch's: a component that hangs again on resume (it
        # never reached its hang before the stop) is not what resuming is checked for.
        scene.hang_marker.touch()
    before = guard.snapshot()
    code, stderr = resumption.resume(scene.command, scene.env, scene.store_dir.parent, bounds.run)
    scene.note(f"--resume exited {code}")
    left = guard.leftovers(before, tag)
    proctree.kill(pid for pid, _ in left)
    found = [Violation("leftover-process", f"after --resume: {pid} {line}") for pid, line in left]
    return found + resumption.check_resumed(plan, scene.db, code, stderr)


def _start(plan: Plan, directory: Path, store_dir: Path, tag: str) -> faults.Scene:
    files = [_run_file(directory, run, directory / "hanging") for run in plan.runs]
    import_path = [os.environ.get("PYTHONPATH", ""), IMPORT_PATH]
    env = dict(os.environ, XDG_CONFIG_HOME=str(directory))
    env["PYTHONPATH"] = os.pathsep.join(p for p in import_path if p)
    env[TAG_VARIABLE] = tag
    broker = None
    if "broker-frames" in {fault.kind for fault in plan.faults}:
        broker = env["PALAESTRIO_BROKER_URI"] = f"tcp://127.0.0.1:{_free_port()}"
    db = store_dir / DB_NAME
    argv = [sys.executable, "-m", "palaestrio", "experiment-start", "--plain"]
    argv += ["--progress-interval", "0", "-p", str(plan.parallel), "--store", f"sqlite:///{db}"]
    with (directory / "stdout").open("wb") as out, (directory / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [*argv, *map(str, files)],
            cwd=directory,
            env=dict(env),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    env.pop("PALAESTRIO_BROKER_URI", None)  # for the --resume that may follow
    command = [*argv, *map(str, files)]
    return faults.Scene(
        process, store_dir, db, time.monotonic(), broker, directory / "hanging", command, env
    )


def _run_file(directory: Path, run: RunPlan, marker: Path) -> Path:
    if run.hang_at is None:
        return write_experiment(
            directory,
            run.uid,
            environment="executor_components:SlowEnvironment",
            max_iter=run.max_iter,
            episodes=run.episodes,
        )
    params = f"{{hang_at: {run.hang_at}, marker: {marker}}}"
    return write_experiment(
        directory,
        run.uid,
        environment="chaos.components:HangingEnvironment",
        environment_params=params,
        max_iter=run.max_iter,
        episodes=run.episodes,
    )


def _supervise(plan: Plan, scene: faults.Scene, bounds: Bounds, kinds: set[str]) -> Outcome:
    threads = [
        threading.Thread(target=faults.INJECTORS[fault.kind], args=(scene, fault), daemon=True)
        for fault in plan.faults
        if fault.kind not in scene.skipped
    ]
    for thread in threads:
        thread.start()
    inode = _watch_inode(scene, bounds.run)
    returncode, stalled = _wait(scene, bounds.run), False
    if returncode is None:
        stalled = True
        scene.signal_executor(signal.SIGINT, "harness: SIGINT, the batch did not end")
        returncode = _wait(scene, bounds.exit + 1.0)
    ended = time.monotonic()
    scene.ended.set()
    for thread in threads:
        thread.join(timeout=10)
    stopped = scene.stopped_at if (kinds & ENDING or stalled) else None
    return Outcome(
        plan,
        scene.db,
        returncode,
        stdout=(scene.store_dir.parent / "stdout").read_text(errors="replace"),
        stderr=(scene.store_dir.parent / "stderr").read_text(errors="replace"),
        exit_seconds=None if stopped is None or returncode is None else ended - stopped,
        stalled=stalled,
        db_replaced=inode is not None and _inode(scene.db) != inode,
        store_created=inode is not None,
        executor_killed=scene.executor_killed,
        signals=scene.signals,
        killed_runs=scene.killed_runs,
        hung_for=scene.hung_for,
        unwritable=bool({"db-full", "db-readonly"} & kinds - scene.skipped.keys())
        or locked_while_stopping(scene.locked, scene.stopped_at, ended),
        finished_at_deletion=scene.finished_at_deletion,
    )


def locked_while_stopping(
    locked: tuple[float, float] | None, stopped_at: float | None, exited: float
) -> bool:
    """Another process held the database's write lock while the executor stopped: the
    stopping store tries a write once, briefly (a ^C exits within a second), and the
    final statuses stay unwritten, as on a full disk."""
    if locked is None or stopped_at is None:
        return False
    began, ended = locked
    return began <= exited and ended >= stopped_at


def _watch_inode(scene: faults.Scene, bound: float) -> int | None:
    """The store file's inode once the executor created it (None if it never did)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        inode = _inode(scene.db)
        if inode is not None or scene.process.poll() is not None:
            return inode
        time.sleep(faults.POLL)
    return None


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _wait(scene: faults.Scene, seconds: float) -> int | None:
    try:
        return scene.process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def _kill_everything(scene: faults.Scene, guard: LeakGuard, before: set[int], tag: str) -> None:
    """Ends the executor and whatever it left, so the next iteration starts clean."""
    proctree.kill_tree(scene.process.pid, include_root=True, reap_root=True)
    if scene.process.poll() is None:
        scene.process.kill()
    scene.process.wait()
    proctree.kill(pid for pid, _ in guard.leftovers(before, tag))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
