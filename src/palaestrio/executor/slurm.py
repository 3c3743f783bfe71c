"""Governors placed by Slurm: each one an ``srun`` job step (scale-out.md §3, §6.2).

`SlurmStepLauncher` runs ``srun --exact -N1 -n1 -c K --job-name=palaestrio-RUN ARGV``
with the local launcher's machinery (trio's `run_process`, own session, output tail),
minus the lifeline pipe, which cannot reach another machine: the broker's heartbeats and
`serve_worker(reconnect=False)` take its place. Inside an allocation (``SLURM_JOB_ID``
set) every governor is a step of it; outside, each ``srun`` is a job of its own.

Stopping: the executor's graceful MDP stop comes first (supervisor). Then
``scancel --signal=TERM JOB.STEP`` (the governor's SIGTERM path kills its tree), and
after ``term_grace`` SIGKILL to ``srun``, upon which Slurm kills the step's cgroup at once.
Not SIGTERM to ``srun``: that is an immediate hard kill of the step (measured, §3.3).

srun's exit status says little (0 after a node failure), so the executor decides the
status; Slurm's own account (``NODE_FAIL``, ``OUT_OF_MEMORY``, ``TIMEOUT``,
``CANCELLED``) goes into `ChildExit.engine_reason`.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import trio

from palaestrio.executor.launch import Child, ChildExit, LineCallback, LocalLauncher

TIME_LIMIT_WARNING = "USR1@120"
"""Slurm signals the governor 120 s before a time limit; it stops gracefully."""
REASON_TIMEOUT = 2.0
"""How long asking Slurm what happened may delay recording a run's end."""
QUIET_STATES = {"COMPLETED", "RUNNING", "PENDING", "COMPLETING"}


class SlurmStepLauncher(LocalLauncher):
    """Places each governor as an ``srun`` job step; see the module's docstring."""

    lifeline = False
    warm_start = False  # each step is named after its run, and holds CPUs of the allocation
    remote = True
    """The broker must be reachable from other machines (TCP with CURVE)."""

    def __init__(
        self,
        *,
        cpus_per_run: int = 1,
        term_grace: float = 1.0,
        env: Mapping[str, str] | None = None,
        srun_options: Sequence[str] = (),
    ) -> None:
        super().__init__(term_grace=term_grace, env=env)
        self.cpus_per_run = cpus_per_run
        self.srun_options = list(srun_options)

    def command(self, name: str, argv: Sequence[str]) -> list[str]:
        return [
            "srun",
            "--exact",
            "-N1",
            "-n1",
            f"-c{self.cpus_per_run}",
            f"--job-name={name}",
            f"--signal={TIME_LIMIT_WARNING}",
            "--kill-on-bad-exit=1",
            "--quiet",
            *self.srun_options,
            *argv,
        ]

    async def run(
        self,
        argv: Sequence[str],
        *,
        name: str = "",
        env: Mapping[str, str] | None = None,
        on_output_line: LineCallback | None = None,
        task_status: trio.TaskStatus[Child] = trio.TASK_STATUS_IGNORED,
    ) -> ChildExit:
        step_name = f"palaestrio-{name or 'governor'}-{uuid.uuid4().hex[:8]}"
        exit_ = await super().run(
            self.command(step_name, argv),
            env=env,
            on_output_line=on_output_line,
            task_status=task_status,
        )
        with trio.move_on_after(REASON_TIMEOUT, shield=True):
            reason = await _in_thread(slurm_reason, step_name)
            if reason is not None:
                exit_ = dataclasses.replace(exit_, engine_reason=reason)
        return exit_

    async def _deliver_cancel(self, process: trio.Process) -> None:
        # Bounded: a lost node can keep slurmctld (and scancel) waiting for seconds.
        with trio.move_on_after(self.term_grace):
            step_name = _job_name(process.args)
            step = await _in_thread(find_step, step_name) if step_name else None
            if step is not None:
                scancel = ["scancel", "--signal=TERM", step]
                await trio.run_process(scancel, check=False, stdout=subprocess.DEVNULL)
                await process.wait()
        # srun SIGKILLed: Slurm kills the whole step (its cgroup) within milliseconds.
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)


async def _in_thread(query: Callable[[str], str | None], name: str) -> str | None:
    # Abandoned when cancelled: the query's own timeout ends the thread later.
    return await trio.to_thread.run_sync(query, name, abandon_on_cancel=True)


def _job_name(args: object) -> str | None:
    for arg in args if isinstance(args, list) else []:
        if isinstance(arg, str) and arg.startswith("--job-name="):
            return arg.partition("=")[2]
    return None


def _query(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def find_step(step_name: str) -> str | None:
    """``JOB.STEP`` of the running step called `step_name`, if Slurm still lists it."""
    listing = _query(["squeue", "--steps", "--noheader", "--format=%i|%j"])
    for line in listing.splitlines():
        step, _, name = line.strip().partition("|")
        if name == step_name:
            return step
    return None


def slurm_reason(step_name: str) -> str | None:
    """What Slurm says happened to the step (or its job) named `step_name`: from the
    accounting (``sacct``) where there is one, else ``scontrol`` (recent jobs only)."""
    accounted = _query(["sacct", "--noheader", "--parsable2", "--format=State,JobName", "-a"])
    for line in accounted.splitlines():
        state, _, name = line.partition("|")
        if name == step_name and state.split()[0] not in QUIET_STATES:
            return f"Slurm: {state.split()[0]}"
    for job in _query(["scontrol", "--oneliner", "show", "job"]).splitlines():
        fields = dict(item.split("=", 1) for item in job.split() if "=" in item)
        state = fields.get("JobState", "")
        if fields.get("JobName") == step_name and state and state not in QUIET_STATES:
            reason = fields.get("Reason", "None")
            return f"Slurm: {state}" + (f" ({reason})" if reason != "None" else "")
    return None


def in_allocation() -> bool:
    return "SLURM_JOB_ID" in os.environ


class SlurmBatchLauncher(SlurmStepLauncher):
    """One ``sbatch --wait --no-requeue`` job per governor, for users who cannot hold an
    allocation: the executor runs anywhere long-lived that can reach the nodes.

    ``sbatch --wait`` stands in for the child (it ends with the job); killing it does not
    end the job, so the kill path is ``scancel``: TERM to the governor, then the job.
    The governor is the batch step's process itself (``exec``), so ``B:USR1@120``
    reaches it. Its output goes to a file in `output_dir` (shared with the nodes)."""

    def __init__(self, *, output_dir: Path | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.output_dir = output_dir or Path(tempfile.gettempdir())

    def command(self, name: str, argv: Sequence[str]) -> list[str]:
        return [
            "sbatch",
            "--wait",
            "--parsable",
            "--no-requeue",  # a requeued job would run the governor a second time
            "-N1",
            "-n1",
            f"-c{self.cpus_per_run}",
            f"--job-name={name}",
            f"--signal=B:{TIME_LIMIT_WARNING}",
            f"--output={self.output_dir / name}.out",
            *self.srun_options,
            "--wrap",
            "exec " + shlex.join(argv),
        ]

    async def _deliver_cancel(self, process: trio.Process) -> None:
        name = _job_name(process.args)
        with trio.move_on_after(self.term_grace):
            if name:
                await _scancel("--signal=TERM", "--batch", f"--name={name}")
                await process.wait()
        if name:
            await _scancel(f"--name={name}")  # the job, whatever is left of it
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)


async def _scancel(*options: str) -> None:
    with trio.move_on_after(REASON_TIMEOUT):
        await trio.run_process(["scancel", *options], check=False, stdout=subprocess.DEVNULL)
