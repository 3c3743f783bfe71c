"""Slurm on the command line: experiment-start's ``--launcher``/``--cpus-per-run``/
``--insecure``, and ``palaestrio sbatch FILES... > job.sh``, a ready batch script whose
executor runs in the batch step and places every run's governor as an ``srun`` step."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from .group import cli, paths_argument, store_option

LAUNCHERS = ("local", "slurm", "slurm-batch")
F = TypeVar("F", bound=Callable[..., Any])


def launcher_options(command: F) -> F:
    """experiment-start's options for where governors run."""
    for option in reversed(
        [
            click.option(
                "--launcher",
                type=click.Choice(LAUNCHERS),
                help="Where governors run: local processes, Slurm job steps, or a Slurm "
                "batch job each (default: slurm inside a Slurm allocation, else local).",
            ),
            click.option(
                "--cpus-per-run",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="CPUs Slurm gives each run's governor (srun -c).",
            ),
            click.option(
                "--insecure",
                is_flag=True,
                help="Allow the broker on plain TCP where other machines reach it.",
            ),
        ]
    ):
        command = option(command)
    return command


def executor_options(launcher: str | None, cpus_per_run: int, insecure: bool) -> dict[str, Any]:
    """Executor keywords for the chosen launcher (the executor loads only here)."""
    name = launcher or ("slurm" if "SLURM_JOB_ID" in os.environ else "local")
    if name == "local":
        return {"insecure": insecure}
    from palaestrio.executor.slurm import SlurmBatchLauncher, SlurmStepLauncher
    from palaestrio.executor.supervisor import governor_environment

    kind = SlurmBatchLauncher if name == "slurm-batch" else SlurmStepLauncher
    placing = kind(cpus_per_run=cpus_per_run, env=governor_environment())
    return {"launcher": placing, "insecure": insecure, "curve": not insecure}


def batch_script(
    paths: Sequence[Path], *, parallel: int, cpus_per_run: int, time: str | None, store: str | None
) -> str:
    command = [sys.executable, "-m", "palaestrio", "experiment-start", "--plain"]
    command += ["--launcher", "slurm", "--cpus-per-run", str(cpus_per_run), "-p", str(parallel)]
    if store:
        command += ["--store", store]
    command += [str(path.resolve()) for path in paths]
    lines = [
        "#!/bin/bash",
        "#SBATCH --job-name=palaestrio",
        f"#SBATCH --ntasks={parallel}",
        f"#SBATCH --cpus-per-task={cpus_per_run}",
        "#SBATCH --no-requeue",  # a requeued job would run every run a second time
    ]
    if time:
        lines.append(f"#SBATCH --time={time}")
    lines += [
        f"cd {shlex.quote(str(Path.cwd()))}",
        "# exec: signals reach the executor itself (bash would die of USR1).",
        "exec " + shlex.join(command),
    ]
    return "\n".join(lines) + "\n"


@cli.command("sbatch")
@paths_argument
@click.option("-p", "--parallel", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--cpus-per-run", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--time", metavar="LIMIT", help="Slurm time limit of the whole job (--time).")
@store_option
def sbatch_command(
    paths: Sequence[Path], parallel: int, cpus_per_run: int, time: str | None, store_uri: str | None
) -> None:
    """Print a batch script that runs the FILEs in one Slurm allocation: `palaestrio
    sbatch runs/ -p 8 > job.sh && sbatch job.sh`."""
    script = batch_script(
        paths, parallel=parallel, cpus_per_run=cpus_per_run, time=time, store=store_uri
    )
    click.echo(script, nl=False)
