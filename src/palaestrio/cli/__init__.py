"""The `palaestrio` command (also `python -m palaestrio`).

Exit status: 0 when every run finished; 1 when any run ended in `error` or `cancelled`;
2 when nothing could be run (bad experiment file, configuration, store URI or database;
every problem named in one message, no traceback unless ``--debug``); 130 / 143 / 129 when
SIGINT / SIGTERM / SIGHUP stopped the runs (the executor cancels them and stores them first).

`group` has the top-level group and its global options; one module per command group
adds its commands to it: `experiment` (experiment-start, experiment-check-syntax),
`runs` (runs list, runs show, runs delete), `database` (database-create,
database-migrate), `runtime_config` (runtime-config-show-*), `broker`, `slurm` (sbatch;
experiment-start's launcher), `serve` (the HTTP service, `palaestrio.serve`). `live`
is what a person watching experiment-start sees, `logs` where log records go meanwhile,
`output` the shared printing helpers.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # `signal` imports enum etc. first: too late
import os
import sys

# Nothing else before `main` has its ^C handler in place: `typing` or `logging` cost
# tens of ms, and a ^C there would be a KeyboardInterrupt traceback.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from palaestrio.cli.group import cli

__all__ = ["cli", "main"]

EXIT_INTERRUPTED = 130
STOPPING = {_signal.SIGTERM: 143, _signal.SIGHUP: 129}
"""Handled by `_stopped` whenever the executor's own signal watcher is not (before it
starts, after it ends): the default action would end us "killed by SIGTERM"."""


def __getattr__(name: str) -> Any:
    """`cli` with every command group added (imported on first use, see `main`)."""
    if name != "cli":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Imported for their commands, which they add to `cli`.
    from palaestrio.cli import (  # noqa: F401
        broker,
        database,
        experiment,
        runs,
        runtime_config,
        serve,
        slurm,
    )
    from palaestrio.cli.group import cli

    return cli


def main() -> None:
    """The `palaestrio` program: exit statuses as documented above, never a traceback
    for a ^C, SIGTERM or SIGHUP, whenever it comes."""
    # Until the command runs, a ^C has nothing to stop: leave at once, quietly (the
    # imports take a few tenths of a second, a KeyboardInterrupt there is a traceback).
    _signal.signal(_signal.SIGINT, _interrupted)
    for signum in STOPPING:
        if _signal.getsignal(signum) != _signal.SIG_IGN:  # nohup's SIGHUP stays ignored
            _signal.signal(signum, _stopped)
    import signal

    command = __getattr__("cli")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        command(prog_name="palaestrio")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    # Done: a signal now must not change the exit status.
    for signum in (signal.SIGINT, *STOPPING):
        signal.signal(signum, signal.SIG_IGN)
    # Every run is stored and every service closed by now: skip the interpreter's
    # teardown (SQLAlchemy, trio, zmq: about 0.3 s, more under load), which only
    # delays the exit a user waits for after ^C.
    import logging  # loaded by now: the commands use it

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _interrupted(_signum: int, _frame: object) -> None:
    os._exit(EXIT_INTERRUPTED)


def _stopped(signum: int, _frame: object) -> None:
    """SIGTERM or SIGHUP outside the executor: nothing of ours to stop gracefully (no
    run has started, or every run is stored); children started meanwhile (the store,
    governors) follow through their lifelines."""
    for stream in (sys.stdout, sys.stderr):
        # What was printed (a summary) still goes out; a write we interrupted may not.
        # No contextlib: this may run before it is imported.
        try:  # noqa: SIM105
            stream.flush()
        except (OSError, RuntimeError, ValueError):
            pass
    os._exit(STOPPING[signum])
