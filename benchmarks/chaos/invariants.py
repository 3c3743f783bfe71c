"""What must hold after every iteration, checked from the outside: the executor's exit,
the processes left, and what the store holds against what the executor said."""

from __future__ import annotations

import re
import signal
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from executor_support import stored_rows

from .plan import Plan

DONE_LINE = re.compile(r"run (\S+) \(([0-9a-f]{8})\): (finished|cancelled), (\d+) steps")
HANG_FLUSH = 1.0
"""Seconds of blocking after which the steps before a hang must be stored."""


@dataclass(frozen=True)
class Violation:
    kind: str
    detail: str


@dataclass
class Outcome:
    """What one iteration observed."""

    plan: Plan
    db: Path
    returncode: int | None
    """None: it did not exit, even after the harness's SIGINT (then it was killed)."""
    stdout: str = ""
    stderr: str = ""
    exit_seconds: float | None = None
    """Seconds from the last stop signal to the exit."""
    stalled: bool = False
    """The batch did not end by itself within the run bound; the harness stopped it."""
    store_created: bool = True
    """The executor got as far as creating the store file."""
    db_replaced: bool = False
    """The store file at the end is not the one the executor created (or is gone)."""
    executor_killed: bool = False
    signals: set[int] = field(default_factory=set)
    """Signals sent to the executor: SIGINT, SIGTERM and SIGHUP must end it with
    130, 143, 129 whenever they come (issue 16, item 8); only SIGKILL may kill it."""
    killed_runs: set[str] = field(default_factory=set)
    hung_for: float | None = None
    unwritable: bool = False
    """A fault took the database's writability away (full, read-only, or locked by
    another process while the executor stopped): a run's status may stay where it was,
    if the executor failed (not exit 0); marking such runs is the next executor's work
    (`--resume`, supervision)."""
    leftovers: list[tuple[int, str]] = field(default_factory=list)
    finished_at_deletion: dict[str, int] | None = None
    """Run uid -> steps stored finished when the harness deleted the store file."""


@dataclass(frozen=True)
class Instance:
    uid: str
    run: str
    status: str
    reason: str | None
    steps: int


def check(outcome: Outcome, exit_bound: float) -> list[Violation]:
    found = check_exit(outcome, exit_bound)
    found += [Violation("leftover-process", f"{pid} {line}") for pid, line in outcome.leftovers]
    instances = read_instances(outcome.db) if not outcome.db_replaced else None
    if instances is not None:
        found += check_store(outcome, instances)
    found += check_success(outcome, instances)
    return found


def check_exit(outcome: Outcome, exit_bound: float) -> list[Violation]:
    found = []
    code = outcome.returncode
    if outcome.stalled:
        found.append(Violation("stalled", "the batch did not end by itself within the bound"))
    if code is None:
        found.append(Violation("no-exit", f"still running {exit_bound:.0f}s after SIGINT"))
    elif outcome.exit_seconds is not None and outcome.exit_seconds > exit_bound:
        found.append(Violation("exit-slow", f"exited {outcome.exit_seconds:.1f}s after the stop"))
    if in_python_start_up(outcome):
        return found
    if code is not None and code < 0 and (-code != signal.SIGKILL or -code not in outcome.signals):
        found.append(Violation("died-by-signal", f"the executor died by signal {-code}"))
    if "Traceback" in outcome.stderr:
        found.append(Violation("traceback", _last_line(outcome.stderr)))
    return found


def in_python_start_up(outcome: Outcome) -> bool:
    """A stop signal that ended Python's own start-up, before palaestrio's handlers (a
    ^C's traceback of frozen modules, or death by the signal; no palaestrio code in it,
    no store created): no program can handle that."""
    code = outcome.returncode
    stops = outcome.signals & {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    return (
        bool(stops)
        and not outcome.store_created
        and "palaestrio" not in outcome.stderr
        and (
            (code is not None and -code in stops)
            or (signal.SIGINT in stops and "KeyboardInterrupt" in outcome.stderr)
        )
    )


def read_instances(db: Path) -> list[Instance] | None:
    """The run instances in the store, or None if it cannot be read."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            rows = connection.execute(
                """SELECT i.uid, r.uid, i.status, i.status_reason
                   FROM experiment_run_instances i
                   JOIN experiment_runs r ON i.experiment_run_id = r.id"""
            ).fetchall()
    except sqlite3.Error:
        return None
    return [
        Instance(uid, run, status, reason, stored_rows(db, uid)[0])
        for uid, run, status, reason in rows
    ]


def duplicate_rows(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        found = connection.execute(
            """SELECT 'world_states', environment_id, episode, step_index FROM world_states
               GROUP BY environment_id, episode, step_index HAVING count(*) > 1
               UNION ALL
               SELECT 'muscle_actions', agent_id, episode, step_index FROM muscle_actions
               GROUP BY agent_id, rollout_worker_uid, episode, step_index
               HAVING count(*) > 1"""
        ).fetchall()
    return [" ".join(map(str, row)) for row in found]


def check_store(outcome: Outcome, instances: list[Instance]) -> list[Violation]:
    found = [Violation("duplicate-rows", row) for row in duplicate_rows(outcome.db)]
    planned = {run.uid: run for run in outcome.plan.runs}
    by_prefix = {instance.uid[:8]: instance for instance in instances}
    for instance in instances:
        run = planned[instance.run]
        if instance.status == "finished" and instance.steps != run.steps:
            found.append(
                Violation(
                    "finished-incomplete",
                    f"{instance.run} finished with {instance.steps} of {run.steps} steps",
                )
            )
        excused = outcome.executor_killed or (outcome.unwritable and outcome.returncode != 0)
        if instance.status in ("scheduled", "running") and not excused:
            found.append(Violation("stuck-status", f"{instance.run} left {instance.status}"))
        hung = run.hang_at is not None and (outcome.hung_for or 0) >= HANG_FLUSH
        if hung and run.hang_at is not None and instance.steps < run.hang_at - 1:
            found.append(
                Violation(
                    "hang-steps-lost",
                    f"{instance.run}: {instance.steps} of the {run.hang_at - 1} steps "
                    f"before a {outcome.hung_for:.1f}s hang stored",
                )
            )
    unacknowledged = outcome.killed_runs | {r.uid for r in planned.values() if r.hang_at}
    for run_uid, prefix, status, steps in DONE_LINE.findall(outcome.stdout):
        said = by_prefix.get(prefix)
        if said is None:
            found.append(Violation("acknowledged-missing", f"{run_uid} ({prefix}) not stored"))
            continue
        if status == "finished" and said.status != "finished":
            found.append(
                Violation("status-mismatch", f"{run_uid} said finished, stored {said.status}")
            )
        acknowledged = "*" not in unacknowledged and run_uid not in unacknowledged
        if acknowledged and said.steps != int(steps):
            found.append(
                Violation(
                    "acknowledged-missing",
                    f"{run_uid} {status} with {steps} steps, {said.steps} stored",
                )
            )
    return found


def check_success(outcome: Outcome, instances: list[Instance] | None) -> list[Violation]:
    """Exit status 0 only if every run of the batch is stored finished and complete."""
    if outcome.returncode != 0:
        return []
    steps = {run.uid: run.steps for run in outcome.plan.runs}
    if instances is None:
        # Deleted once every run was stored finished and whole: nothing of ours was lost.
        stored = outcome.finished_at_deletion or {}
        if any(stored.get(uid) != count for uid, count in steps.items()):
            return [Violation("success-for-lost-data", "exit 0, but the store file is gone")]
        return []
    complete = {i.run for i in instances if i.status == "finished" and i.steps == steps[i.run]}
    missing = sorted(set(steps) - complete)
    if missing:
        return [Violation("success-for-lost-data", f"exit 0, not complete: {', '.join(missing)}")]
    return []


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else ""
