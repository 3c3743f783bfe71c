"""The `palaestrio` command (also `python -m palaestrio`).

Exit status: 0 when every run finished; 1 when any run ended in `error` or `cancelled`;
2 when nothing could be run (bad experiment file, configuration, store URI or database;
every problem named in one message, no traceback unless ``--debug``); 130 / 143 when
SIGINT / SIGTERM stopped the runs (the executor cancels them and stores them first).

`group` has the top-level group and its global options; one module per command group
adds its commands to it: `experiment` (experiment-start, experiment-check-syntax),
`runs` (runs list, runs show, runs delete), `database` (database-create,
database-migrate), `runtime_config`
(runtime-config-show-*), `broker`, `slurm` (sbatch; experiment-start's launcher). `live`
is what a person watching experiment-start sees, `logs` where log records go meanwhile,
`output` the shared printing helpers.
"""

from __future__ import annotations

import logging
import os
import sys

# Imported for their commands, which they add to `cli`.
from palaestrio.cli import broker, database, experiment, runs, runtime_config, slurm  # noqa: F401
from palaestrio.cli.group import cli

__all__ = ["cli", "main"]


def main() -> None:
    try:
        cli(prog_name="palaestrio")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
    # Every run is stored and every service closed by now: skip the interpreter's
    # teardown (SQLAlchemy, trio, zmq: about 0.3 s, more under load), which only
    # delays the exit a user waits for after ^C.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
