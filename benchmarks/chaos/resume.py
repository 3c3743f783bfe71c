"""The follow-up of a failed batch: `experiment-start --resume` with the same files and
store, no faults. Afterwards each run of the batch has exactly one complete `finished`
instance, no instance is left `scheduled`/`running`, and the resume exited 0."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from .invariants import Violation, duplicate_rows, read_instances
from .plan import Plan


def supported() -> bool:
    """Whether this palaestrio's experiment-start has --resume (issue 16)."""
    done = subprocess.run(
        [sys.executable, "-m", "palaestrio", "experiment-start", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "--resume" in done.stdout


def resume(argv: list[str], env: dict[str, str], cwd: Path, bound: float) -> tuple[int | None, str]:
    """Runs the batch's command line again with --resume; (exit status, stderr)."""
    with (cwd / "resume.out").open("wb") as out:
        process = subprocess.Popen(
            [*argv, "--resume"], cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE
        )
        try:
            _, err = process.communicate(timeout=bound)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return None, ""
    return process.returncode, err.decode(errors="replace")


def check_resumed(plan: Plan, db: Path, returncode: int | None, stderr: str) -> list[Violation]:
    if returncode is None:
        return [Violation("resume-stalled", "--resume did not end within the run bound")]
    found = []
    if returncode != 0:
        last = stderr.strip().splitlines()[-1:] or [""]
        found.append(Violation("resume-failed", f"--resume exited {returncode}: {last[0]}"))
    instances = read_instances(db)
    if instances is None:
        return [*found, Violation("resume-failed", "the store cannot be read after --resume")]
    found += [Violation("duplicate-rows", row) for row in duplicate_rows(db)]
    steps = {run.uid: run.steps for run in plan.runs}
    complete = Counter(
        i.run for i in instances if i.status == "finished" and i.steps == steps[i.run]
    )
    for run in plan.runs:
        if complete[run.uid] != 1:
            found.append(
                Violation(
                    "resume-incomplete",
                    f"{run.uid}: {complete[run.uid]} complete finished instances",
                )
            )
    for instance in instances:
        if instance.status in ("scheduled", "running"):
            found.append(
                Violation("resume-stuck-status", f"{instance.run} still {instance.status}")
            )
    return found
