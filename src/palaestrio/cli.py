"""The `palaestrio` command (also `python -m palaestrio`).

Exit status: 0 when every run finished; 1 when any run ended in `error` or `cancelled`;
2 when nothing could be run (bad experiment file, configuration, store URI or database;
every problem named in one message, no traceback unless ``--debug``); 130 / 143 when
SIGINT / SIGTERM stopped the runs (the executor cancels them and stores them first).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import msgspec
from rich import box
from rich.console import Console
from rich.table import Table

from palaestrio import __version__
from palaestrio.config import DEFAULT_TEXT, ConfigError, RuntimeConfig, load_runtime_config
from palaestrio.experiment import (
    ExperimentFileError,
    ExperimentFileWarning,
    ExperimentRun,
    load_experiment_runs,
)
from palaestrio.live import LiveProgress, PlainProgress, Progress, format_seconds, logging_to
from palaestrio.store.errors import StoreError

# The executor (with SQLAlchemy, pyzmq) loads only when runs start: reporting a broken
# experiment file or listing runs should not wait for it.
if TYPE_CHECKING:
    from palaestrio.executor import ExecutorState, ExperimentRunRuntimeInformation

EXIT_FAILED = 1
EXIT_NOTHING_RUN = 2
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
DEFAULT_BROKER_BIND = "tcp://127.0.0.1:5555"

log = logging.getLogger(__name__)


class PalaestrioCommandError(click.ClickException):
    """One clear message on stderr, exit status 2."""

    exit_code = EXIT_NOTHING_RUN


def _is_expected(error: BaseException) -> bool:
    """Errors that come from what the user gave (files, configuration, URIs)."""
    if isinstance(error, ConfigError | ExperimentFileError | StoreError):
        return True
    zmq = sys.modules.get("zmq")  # a bad broker endpoint; zmq is loaded if it was used
    return zmq is not None and isinstance(error, zmq.ZMQError)


@dataclasses.dataclass
class Options:
    """The global options, for subcommands."""

    config_path: Path | None
    verbose: int
    log_level: str | None
    debug: bool

    def config(self, **flags: Any) -> RuntimeConfig:
        return load_runtime_config(self.config_path, overrides=flags)

    def level(self) -> str | None:
        """The log level the flags ask for (None: the configured one)."""
        if self.log_level:
            return self.log_level.upper()
        return {0: None, 1: "INFO"}.get(self.verbose, "DEBUG")


class _Group(click.Group):
    """Turns the errors users cause into one message without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            if not _is_expected(error) or (isinstance(ctx.obj, Options) and ctx.obj.debug):
                raise
            raise PalaestrioCommandError(_describe(error)) from None
        except KeyboardInterrupt:
            click.echo("palaestrio: interrupted", err=True)
            ctx.exit(130)


def _describe(error: BaseException) -> str:
    if type(error).__module__.startswith("zmq"):
        return f"broker: {error}"
    return str(error)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Runtime configuration file (default: ./palaestrio-runtime.conf.yaml, "
    "then ~/.config/palaestrio/runtime.conf.yaml).",
)
@click.option("-v", "--verbose", count=True, help="More log output: -v info, -vv debug.")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    help="Log level (overrides -v and the configuration).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(__version__, prog_name="palaestrio")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, verbose: int, log_level: str | None, debug: bool
) -> None:
    """palaestrio runs palaestrAI-style experiment runs on trio structured concurrency."""
    ctx.obj = Options(config_path, verbose, log_level, debug)


paths_argument = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="FILE_OR_DIR..."
)
store_option = click.option(
    "--store",
    "store_uri",
    metavar="URI",
    help="Store URI (default from the runtime configuration: sqlite:///palaestrio.db).",
)


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
@click.pass_context
def experiment_start(
    ctx: click.Context,
    paths: Sequence[Path],
    parallel: int | None,
    store_uri: str | None,
    plain: bool,
) -> None:
    """Run every experiment run file given (a directory: each *.yml/*.yaml in it)."""
    options: Options = ctx.obj
    config = options.config(store_uri=store_uri, parallel_runs=parallel)
    runs = _load_runs(paths)
    _check_store_uri(config.store_uri)
    console = _stdout_console()
    live = console.is_terminal and not plain
    view: Progress = LiveProgress(console) if live else PlainProgress(sys.stdout)
    import trio

    with logging_to(config.logging, options.level(), console if live else None):
        governor_level = logging.getLevelName(
            logging.getLogger("palaestrio.governor").getEffectiveLevel()
        )
        state, infos = trio.run(_execute, runs, config, view, governor_level)
    if state.name in EXIT_CODES:
        # Everything is down: a late ^C must not turn the exit status into "killed".
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _print_summary(console, config.store_uri, infos)
    if state.name in EXIT_CODES:
        ctx.exit(EXIT_CODES[state.name])
    ctx.exit(0 if all(info.status == "finished" for info in infos) else EXIT_FAILED)


async def _execute(
    runs: list[ExperimentRun], config: RuntimeConfig, view: Progress, governor_level: str
) -> tuple[ExecutorState, list[ExperimentRunRuntimeInformation]]:
    from palaestrio.executor import Executor

    executor = Executor(
        config.parallel_runs,
        store_uri=config.store_uri,
        broker_uri=config.broker_uri,
        on_update=view.update,
        governor_log_level=governor_level,
    )
    executor.schedule(runs)
    for info in executor.experiment_runs():
        view.update(info)
    with view.showing():
        state = await executor.execute()
    return state, executor.experiment_runs()


def _load_runs(paths: Sequence[Path]) -> list[ExperimentRun]:
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
    from palaestrio.store import parse_store_uri

    parse_store_uri(uri)


def _print_summary(
    console: Console, store_uri: str, infos: list[ExperimentRunRuntimeInformation]
) -> None:
    """The runs of this invocation as the store has them (the executor's view if the
    store cannot be read)."""
    from palaestrio.store import list_runs, open_database
    from palaestrio.store.engine import describe

    stored = {}
    try:
        engine = open_database(store_uri)
        try:
            stored = {summary.instance_uid: summary for summary in list_runs(engine)}
        finally:
            engine.dispose()
    except StoreError as error:
        log.warning("cannot read the runs back from the store: %s", error)
    table = _table()
    table.add_column("run", min_width=10)
    table.add_column("instance", no_wrap=True, min_width=32)
    table.add_column("status", no_wrap=True)
    table.add_column("episodes", justify="right", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("wall", justify="right", no_wrap=True)
    problems = []
    for info in infos:
        summary = stored.get(info.instance_uid)
        if summary is not None:
            status, episodes, steps = summary.status, summary.episodes, summary.steps
            reason = summary.reason
        else:
            status, episodes, steps = info.status, info.episodes, info.steps
            reason = info.reason
        # From the RunGovernor's start to its end, as the live view counts it.
        wall = _seconds(info.started_at, info.ended_at)
        table.add_row(
            info.experiment_run.uid,
            info.instance_uid,
            status,
            str(episodes),
            str(steps),
            "-" if wall is None else format_seconds(wall),
        )
        if status != "finished" and reason:
            problems.append(f"{info.experiment_run.uid} ({info.instance_uid}) {status}: {reason}")
    console.print(table)
    console.print(f"store: {describe(store_uri)}", markup=False)
    for problem in problems:
        console.print(problem, markup=False, highlight=False)


def _table() -> Table:
    """Tables without vertical rules: readable in logs, and cells split on whitespace."""
    return Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def _stdout_console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Logs and pipes: wide enough that uids are not folded.
        console = Console(highlight=False, width=200)
    return console


@cli.command("experiment-check-syntax")
@paths_argument
def experiment_check_syntax(paths: Sequence[Path]) -> None:
    """Validate experiment run files without running them."""
    runs = _load_runs(paths)
    for run in runs:
        click.echo(f"ok: {run.uid} ({run.source or '-'}): {len(run.phases)} phase(s)")
    click.echo(f"{len(runs)} experiment run(s) valid")


@cli.command("database-create")
@store_option
@click.pass_obj
def database_create(options: Options, store_uri: str | None) -> None:
    """Create the store database and its tables (idempotent)."""
    from palaestrio.store import create_database
    from palaestrio.store.engine import describe

    config = options.config(store_uri=store_uri)
    create_database(config.store_uri)
    click.echo(f"store database ready: {describe(config.store_uri)}")


@cli.group()
def runs() -> None:
    """What the store holds."""


@runs.command("list")
@store_option
@click.option("--status", help="Only runs with this status.")
@click.option("--experiment", help="Only runs of this experiment uid.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
def runs_list(
    options: Options,
    store_uri: str | None,
    status: str | None,
    experiment: str | None,
    as_json: bool,
) -> None:
    """List the run instances in the store, oldest first."""
    from palaestrio.store import list_runs

    config = options.config(store_uri=store_uri)
    engine = _open(config.store_uri)
    try:
        summaries = list_runs(engine, status=status, experiment_uid=experiment)
    finally:
        engine.dispose()
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(summaries)).decode())
        return
    table = _table()
    table.add_column("instance", no_wrap=True, min_width=32)
    for name in ("run", "experiment"):
        table.add_column(name)
    for name in ("status", "scheduled"):
        table.add_column(name, no_wrap=True)
    for name in ("episodes", "steps"):
        table.add_column(name, justify="right", no_wrap=True)
    for summary in summaries:
        table.add_row(
            summary.instance_uid,
            summary.run_uid,
            summary.experiment_uid,
            summary.status,
            _time(summary.scheduled),
            str(summary.episodes),
            str(summary.steps),
        )
    _stdout_console().print(table)


@runs.command("show")
@click.argument("run")
@store_option
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@click.option("--document", is_flag=True, help="Print the experiment file the run was given.")
@click.pass_obj
def runs_show(
    options: Options, run: str, store_uri: str | None, as_json: bool, document: bool
) -> None:
    """Show one run instance (by instance uid, or the latest instance of a run uid)."""
    from palaestrio.store import run_details

    config = options.config(store_uri=store_uri)
    engine = _open(config.store_uri)
    try:
        details = run_details(engine, run)
    finally:
        engine.dispose()
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(details)).decode())
        return
    if document:
        click.echo(details.document or "", nl=False)
        return
    summary = details.run
    console = _stdout_console()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    wall = _seconds(summary.started, summary.ended)
    for name, value in (
        ("run", summary.run_uid),
        ("instance", summary.instance_uid),
        ("experiment", summary.experiment_uid),
        ("status", summary.status),
        ("user", details.user or "-"),
        ("scheduled", _time(summary.scheduled)),
        ("started", _time(summary.started)),
        ("ended", _time(summary.ended)),
        ("wall time", "-" if wall is None else format_seconds(wall)),
        ("phases", str(summary.phases)),
        ("episodes", str(summary.episodes)),
        ("steps", str(summary.steps)),
    ):
        facts.add_row(name, value)
    if summary.reason:
        facts.add_row("error" if summary.status == "error" else "reason", summary.reason)
    console.print(facts)
    phases = _table()
    for name in ("#", "phase", "mode", "workers", "episodes", "steps", "environments", "agents"):
        numeric = name in ("#", "workers", "episodes", "steps")
        phases.add_column(name, justify="right" if numeric else "left")
    for phase in details.phases:
        phases.add_row(
            str(phase.number),
            phase.name,
            phase.mode or "-",
            str(phase.workers),
            str(phase.episodes),
            str(phase.steps),
            ", ".join(phase.environments),
            ", ".join(phase.agents),
        )
    console.print(phases)


def _open(store_uri: str) -> Any:
    from palaestrio.store import open_database

    return open_database(store_uri)


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


@cli.command("broker")
@click.option(
    "--bind",
    metavar="ENDPOINT",
    help="Endpoint to bind (default: broker_uri of the runtime configuration, else "
    f"{DEFAULT_BROKER_BIND}).",
)
@click.pass_obj
def broker_command(options: Options, bind: str | None) -> NoReturn:
    """Run a standalone MDP broker until SIGINT/SIGTERM."""
    from palaestrio.mdp import broker

    endpoint = bind or options.config().broker_uri or DEFAULT_BROKER_BIND
    broker.main(["--bind", endpoint])
    raise SystemExit(0)


@cli.command("runtime-config-show-default")
def runtime_config_show_default() -> None:
    """Print the default runtime configuration (a commented YAML file)."""
    click.echo(DEFAULT_TEXT, nl=False)


@cli.command("runtime-config-show-effective")
@click.pass_obj
def runtime_config_show_effective(options: Options) -> None:
    """Print the configuration in effect here, with where each value came from."""
    click.echo(options.config().to_yaml(), nl=False)


def main() -> None:
    cli(prog_name="palaestrio")
