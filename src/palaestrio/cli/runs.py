"""`runs list` and `runs show`: what the store holds."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
import msgspec
from rich.table import Table

from palaestrio.status import RunStatus

from .group import Options, PalaestrioCommandError, cli, store_option
from .output import (
    WIDE,
    format_seconds,
    instance_id,
    local_time,
    seconds_between,
    stdout_console,
    table,
)

if TYPE_CHECKING:
    from palaestrio.store.queries import RunDetails


@cli.group()
def runs() -> None:
    """What the store holds."""


@runs.command("list")
@store_option
@click.option(
    "--status",
    type=click.Choice([status.value for status in RunStatus if status is not RunStatus.STARTING]),
    help="Only runs with this status.",
)
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
    console = stdout_console()
    listing = table()
    # At 80 columns the uid is short and the names wrap; status and numbers stay whole.
    listing.add_column("instance", no_wrap=True)
    listing.add_column("run", overflow="fold", ratio=2, min_width=10)
    listing.add_column("experiment", overflow="fold", ratio=1, min_width=10)
    listing.add_column("status", no_wrap=True, min_width=len(RunStatus.CANCELLED))
    listing.add_column("scheduled", no_wrap=True)
    for name in ("episodes", "steps"):
        listing.add_column(name, justify="right", no_wrap=True)
    retried = any(summary.attempt > 1 for summary in summaries)
    if retried:
        listing.add_column("attempt", justify="right", no_wrap=True)
    for summary in summaries:
        listing.add_row(
            instance_id(summary.instance_uid, console),
            summary.run_uid,
            summary.experiment_uid,
            summary.status,
            local_time(summary.scheduled, short=console.width < WIDE),
            str(summary.episodes),
            str(summary.steps),
            *([str(summary.attempt)] if retried else []),
        )
    console.print(listing)


@runs.command("show")
@click.argument("run")
@store_option
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@click.option("--document", is_flag=True, help="Print the experiment file the run was given.")
@click.option("--log", "show_log", is_flag=True, help="Print the run's whole governor output.")
@click.pass_obj
def runs_show(
    options: Options,
    run: str,
    store_uri: str | None,
    as_json: bool,
    document: bool,
    show_log: bool,
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
    if show_log:
        _print_log(config.store_uri, details.run.instance_uid, config.run_log_dir)
        return
    console = stdout_console()
    console.print(_facts(details))
    console.print(_phases(details))


def _facts(details: RunDetails) -> Table:
    """One run instance: uids, status, times and totals."""
    summary = details.run
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    wall = seconds_between(summary.started, summary.ended)
    for name, value in (
        ("run", summary.run_uid),
        ("instance", summary.instance_uid),
        ("experiment", summary.experiment_uid),
        ("status", summary.status),
        ("user", details.user or "-"),
        ("scheduled", local_time(summary.scheduled)),
        ("started", local_time(summary.started)),
        ("ended", local_time(summary.ended)),
        ("wall time", "-" if wall is None else format_seconds(wall)),
        ("phases", str(summary.phases)),
        ("episodes", str(summary.episodes)),
        ("steps", str(summary.steps)),
        (
            "attempt",
            str(summary.attempt) + (f" (retry of {summary.retry_of})" if summary.retry_of else ""),
        ),
    ):
        facts.add_row(name, value)
    if summary.reason:
        facts.add_row("error" if summary.status == RunStatus.ERROR else "reason", summary.reason)
    return facts


def _print_log(store_uri: str, instance_uid: str, configured: str | None) -> None:
    """Copies the run's log file to stdout as it is (bytes, in chunks: it may be big)."""
    from palaestrio.store.run_logs import run_log_path

    path = run_log_path(store_uri, instance_uid, configured)
    try:
        with path.open("rb") as log_file:
            out = sys.stdout.buffer
            while chunk := log_file.read(1 << 20):
                out.write(chunk)
            out.flush()
    except FileNotFoundError:
        raise PalaestrioCommandError(
            f"run instance {instance_uid} has no log file ({path} does not exist): "
            "its governor wrote no output, or ran on another machine's executor"
        ) from None
    except OSError as error:
        raise PalaestrioCommandError(f"cannot read the log file {path}: {error}") from None


def _phases(details: RunDetails) -> Table:
    """The run instance's phases, one row each."""
    phases = table()
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
    return phases


@runs.command("delete")
@click.argument("run_ids", nargs=-1, metavar="RUN...")
@click.option("--experiment", help="Every run of this experiment uid.")
@store_option
@click.option("-y", "--yes", is_flag=True, help="Delete without asking.")
@click.pass_obj
def runs_delete(
    options: Options,
    run_ids: tuple[str, ...],
    experiment: str | None,
    store_uri: str | None,
    yes: bool,
) -> None:
    """Delete run instances and everything stored for them (RUN: an instance uid, a
    short one, or a run uid: all its instances)."""
    from palaestrio.store import list_runs, run_details
    from palaestrio.store.deletion import delete_runs

    if not run_ids and experiment is None:
        raise click.UsageError("name the runs to delete, or --experiment")
    config = options.config(store_uri=store_uri)
    engine = _open(config.store_uri)
    try:
        chosen = {}
        for run_id in run_ids:
            for summary in list_runs(engine, run_uid=run_id) or [run_details(engine, run_id).run]:
                chosen[summary.instance_uid] = summary
        if experiment is not None:
            of_experiment = list_runs(engine, experiment_uid=experiment)
            if not of_experiment:
                raise PalaestrioCommandError(f"the store has no runs of experiment {experiment!r}")
            chosen.update((summary.instance_uid, summary) for summary in of_experiment)
        doomed = list(chosen.values())
        console = stdout_console()
        for summary in doomed:
            console.print(
                f"{summary.instance_uid[:8]}  {summary.run_uid}  {summary.status}  "
                f"{summary.steps} steps",
                markup=False,
            )
        if not yes:
            click.confirm(f"Delete these {len(doomed)} run instance(s)?", abort=True)
        deleted = delete_runs(engine, doomed)
    finally:
        engine.dispose()
    _delete_logs(config.store_uri, [summary.instance_uid for summary in doomed], config.run_log_dir)
    click.echo(f"deleted {deleted} run instance(s)")


def _delete_logs(store_uri: str, instance_uids: list[str], configured: str | None) -> None:
    from palaestrio.store.run_logs import run_log_path

    for uid in instance_uids:
        try:
            run_log_path(store_uri, uid, configured).unlink(missing_ok=True)
        except OSError as error:
            click.echo(f"Warning: cannot delete the log of {uid}: {error}", err=True)


def _open(store_uri: str) -> Any:
    """The store, with the runs of executors that died marked `error` first (a run
    must never read `running` after its executor is gone)."""
    from palaestrio.store import open_database
    from palaestrio.store.ownership import reap_lost_runs

    engine = open_database(store_uri)
    try:
        reap_lost_runs(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


# `runs export` and `runs plot` live in their own module, which adds them to `runs`.
from . import results as _results  # noqa: E402, F401
