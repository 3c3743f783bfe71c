"""`experiment-start` and `experiment-check-syntax`."""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from palaestrio.config import RuntimeConfig
from palaestrio.experiment import (
    ExperimentFileError,
    ExperimentFileWarning,
    ExperimentRun,
    load_experiment_runs,
)
from palaestrio.status import RunStatus

from .group import EXIT_CODES, EXIT_FAILED, Options, cli, paths_argument, store_option
from .live import PLAIN_INTERVAL, LiveProgress, PlainProgress, Progress
from .logs import logging_to
from .output import format_seconds, instance_id, seconds_between, stdout_console, table
from .resume import skip_finished
from .slurm import executor_options, launcher_options

# The executor (with SQLAlchemy, pyzmq) loads only when runs start: reporting a broken
# experiment file or listing runs should not wait for it.
if TYPE_CHECKING:
    from palaestrio.executor import ExecutorState, ExperimentRunRuntimeInformation
    from palaestrio.store.messages import RunSummary

log = logging.getLogger("palaestrio.cli")


@cli.command("experiment-start")
@paths_argument
@click.option(
    "-p",
    "--parallel",
    type=click.IntRange(min=1),
    help="Runs executing at once (default from the runtime configuration: 1).",
)
@store_option
@click.option("--plain", is_flag=True, help="Plain lines instead of the live table.")
@click.option(
    "--progress-interval",
    type=click.FloatRange(min=0),
    default=PLAIN_INTERVAL,
    show_default=True,
    metavar="SECONDS",
    help="Plain output: a progress line per running run this often (0: none).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    help="Run a run that ended in error again, up to N times (default from the runtime "
    "configuration: 0). Each attempt is an instance of its own.",
    metavar="N",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Skip runs the store has a finished instance of (same experiment file, seed "
    "included); run the rest.",
)
@launcher_options
@click.pass_context
def experiment_start(
    ctx: click.Context,
    paths: Sequence[Path],
    parallel: int | None,
    store_uri: str | None,
    plain: bool,
    progress_interval: float,
    retries: int | None,
    resume: bool,
    launcher: str | None,
    cpus_per_run: int,
    insecure: bool,
) -> None:
    """Run every experiment run file given (a directory: each *.yml/*.yaml in it)."""
    options: Options = ctx.obj
    config = options.config(store_uri=store_uri, parallel_runs=parallel, retries=retries)
    runs = load_runs(paths)
    _check_store_uri(config.store_uri)
    console = stdout_console()
    if resume:
        runs = skip_finished(runs, config.store_uri, console)
        if not runs:
            ctx.exit(0)
    live = console.is_terminal and not plain
    view: Progress = LiveProgress(console) if live else PlainProgress(sys.stdout, progress_interval)
    import trio

    with logging_to(config.logging, options.level(), console if live else None):
        governor_level = logging.getLevelName(
            logging.getLogger("palaestrio.governor").getEffectiveLevel()
        )
        placement = executor_options(launcher, cpus_per_run, insecure)
        state, infos, store_failure, stored = trio.run(
            _execute, runs, config, view, governor_level, placement
        )
    if state.name in EXIT_CODES:
        # Everything is down: a late ^C must not turn the exit status into "killed".
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    from palaestrio.executor import final_attempts

    finals = final_attempts(infos)
    # A store that failed may hold stale statuses (or be gone): the executor's say.
    _print_summary(
        console, config.store_uri, finals, view.reported, stored if store_failure is None else None
    )
    if state.name in EXIT_CODES:
        ctx.exit(EXIT_CODES[state.name])
    if store_failure is not None:
        click.echo(f"palaestrio: the store failed, runs ended error: {store_failure}", err=True)
        ctx.exit(EXIT_FAILED)
    ctx.exit(0 if all(info.status == RunStatus.FINISHED for info in finals) else EXIT_FAILED)


async def _execute(
    runs: list[ExperimentRun],
    config: RuntimeConfig,
    view: Progress,
    governor_level: str,
    placement: dict[str, Any],
) -> tuple[
    ExecutorState, list[ExperimentRunRuntimeInformation], str | None, list[RunSummary] | None
]:
    from palaestrio.executor import Executor, ExecutorOptions

    executor = Executor(
        config.parallel_runs,
        store_uri=config.store_uri,
        broker_uri=config.broker_uri,
        on_update=view.update,
        options=ExecutorOptions(
            retries=config.retries,
            retry_backoff=config.retry_backoff,
            retry_backoff_max=config.retry_backoff_max,
            run_log_dir=config.run_log_dir,
        ),
        governor_log_level=governor_level,
        store_write_retries=config.store_write_retries,
        store_write_retry_seconds=config.store_write_retry_seconds,
        store_restarts=config.store_restarts,
        store_restart_seconds=config.store_restart_seconds,
        broker_max_waiting_requests=config.broker_max_waiting_requests,
        broker_max_waiting_bytes=config.broker_max_waiting_bytes,
        broker_max_queued_bytes=config.broker_max_queued_bytes,
        broker_request_expiry=config.broker_request_expiry,
        **placement,
    )
    executor.schedule(runs)
    for info in executor.experiment_runs():
        view.update(info)
    with view.showing():
        state = await executor.execute()
    return state, executor.experiment_runs(), executor.store_failure, executor.stored_runs


def load_runs(paths: Sequence[Path]) -> list[ExperimentRun]:
    """Every run of every path; every problem of every file in one error."""
    runs: list[ExperimentRun] = []
    problems = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExperimentFileWarning)
        for path in paths:
            try:
                runs.extend(load_experiment_runs(path))
            except ExperimentFileError as error:
                problems.extend(error.problems)
    for warning in caught:
        if issubclass(warning.category, ExperimentFileWarning):
            # Said plainly, without Python's source line of the warnings.warn call.
            click.echo(f"Warning: {warning.message}", err=True)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if problems:
        raise ExperimentFileError(problems)
    return runs


def _check_store_uri(uri: str) -> None:
    from palaestrio.store.uri import parse_uri

    parse_uri(uri)


def _print_summary(
    console: Console,
    store_uri: str,
    infos: list[ExperimentRunRuntimeInformation],
    reported: set[str],
    stored_runs: list[RunSummary] | None,
) -> None:
    """The runs of this invocation (each one's last attempt) as the store has them
    (`stored_runs`, which the executor read through the store process; the executor's
    view where the store could not or must not say), and why runs failed unless
    `reported` (printed already)."""
    from palaestrio.store.uri import describe

    stored = {summary.instance_uid: summary for summary in stored_runs or ()}
    summary_table = table()
    summary_table.add_column("run", overflow="fold", min_width=10)
    summary_table.add_column("instance", no_wrap=True)
    summary_table.add_column("status", no_wrap=True, min_width=len(RunStatus.CANCELLED))
    summary_table.add_column("episodes", justify="right", no_wrap=True)
    summary_table.add_column("steps", justify="right", no_wrap=True)
    summary_table.add_column("wall", justify="right", no_wrap=True)
    retried = any(info.attempt > 1 for info in infos)
    if retried:
        summary_table.add_column("attempt", justify="right", no_wrap=True)
    problems = []
    for info in infos:
        summary = stored.get(info.instance_uid)
        if summary is not None:
            status, episodes, steps = summary.status, summary.episodes, summary.steps
            reason = summary.reason
            # The stored times, as `runs show` gives them.
            wall = seconds_between(summary.started, summary.ended)
        else:
            status, episodes, steps = info.status, info.episodes, info.steps
            reason = info.reason
            wall = seconds_between(info.started_at, info.ended_at)
        summary_table.add_row(
            info.experiment_run.uid,
            instance_id(info.instance_uid, console),
            status,
            str(episodes),
            str(steps),
            "-" if wall is None else format_seconds(wall),
            *([str(info.attempt)] if retried else []),
        )
        if status != RunStatus.FINISHED and reason and info.instance_uid not in reported:
            problems.append(f"{info.experiment_run.uid} ({info.instance_uid}) {status}: {reason}")
    console.print(summary_table)
    console.print(f"store: {describe(store_uri)}", markup=False)
    for problem in problems:
        console.print(problem, markup=False, highlight=False)


@cli.command("experiment-check-syntax")
@paths_argument
def experiment_check_syntax(paths: Sequence[Path]) -> None:
    """Validate experiment run files without running them."""
    runs = load_runs(paths)
    for run in runs:
        click.echo(f"ok: {run.uid} ({run.source or '-'}): {len(run.phases)} phase(s)")
    click.echo(f"{len(runs)} experiment run(s) valid")
