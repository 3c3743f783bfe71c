"""`palaestrio sbatch` writes a batch script that runs the files in one allocation."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from click.testing import CliRunner

from executor_support import write_experiment
from palaestrio.cli import cli


def test_sbatch_writes_a_ready_batch_script(tmp_path: Path) -> None:
    run_file = write_experiment(tmp_path, "batched")
    argv = ["sbatch", str(run_file), "-p", "8", "--cpus-per-run", "2", "--time", "1:00:00"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "#!/bin/bash"
    for directive in ("--ntasks=8", "--cpus-per-task=2", "--no-requeue", "--time=1:00:00"):
        assert f"#SBATCH {directive}" in lines, lines
    command = shlex.split(lines[-1])
    assert command[:4] == ["exec", sys.executable, "-m", "palaestrio"]
    assert command[4:] == [
        "experiment-start",
        "--plain",
        *("--launcher", "slurm", "--cpus-per-run", "2", "-p", "8"),
        str(run_file.resolve()),
    ]


def test_experiment_start_knows_the_launchers() -> None:
    result = CliRunner().invoke(cli, ["experiment-start", "--help"])
    assert "--launcher [local|slurm|slurm-batch]" in result.output
    assert "--cpus-per-run" in result.output and "--insecure" in result.output
