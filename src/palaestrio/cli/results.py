"""`runs export` and `runs plot`: a run's results to take away and to look at."""

from __future__ import annotations

from pathlib import Path

import click

from .group import Options, PalaestrioCommandError, store_option
from .runs import _open, runs


def _require(module: str, extra: str, purpose: str) -> None:
    """Fails at once, before the store is read, when an optional package is missing."""
    from palaestrio.results.extras import MissingExtra, require

    try:
        require(module, extra, purpose)
    except MissingExtra as error:
        raise PalaestrioCommandError(str(error)) from None


@runs.command("export")
@click.argument("run")
@click.option(
    "-o",
    "--output",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the tables and metadata.json (made if missing).",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["csv", "parquet"]),
    default="csv",
    show_default=True,
    help="Parquet needs the parquet extra: pip install 'palaestrio[parquet]'.",
)
@store_option
@click.pass_obj
def runs_export(
    options: Options, run: str, directory: Path, format_: str, store_uri: str | None
) -> None:
    """Export a run instance's world states and muscle actions as tidy tables
    (world_states, muscle_actions: one row per step and environment / agent) with
    metadata.json. RUN: an instance uid, a short one, or a run uid (its latest instance)."""
    from palaestrio.results.export import export_run

    if format_ == "parquet":
        _require("pyarrow.parquet", "parquet", "Parquet export")
    config = options.config(store_uri=store_uri)
    engine = _open(config.store_uri)
    try:
        exported = export_run(engine, run, directory, "parquet" if format_ == "parquet" else "csv")
    finally:
        engine.dispose()
    for table in (exported.world_states, exported.muscle_actions):
        click.echo(f"{directory / table.file}: {table.rows} rows, {len(table.columns)} columns")
    click.echo(f"{directory / 'metadata.json'}")


@runs.command("plot")
@click.argument("run")
@click.option(
    "-o",
    "--output",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The PNG file to write.",
)
@store_option
@click.pass_obj
def runs_plot(options: Options, run: str, path: Path, store_uri: str | None) -> None:
    """Plot a run instance: objective and reward per episode per agent, episode length,
    steps/s over time (one PNG). Needs the plot extra: pip install 'palaestrio[plot]'."""
    _require("matplotlib", "plot", "runs plot")
    from palaestrio.results.plot import plot_series
    from palaestrio.results.series import episode_series

    config = options.config(store_uri=store_uri)
    engine = _open(config.store_uri)
    try:
        series = episode_series(engine, run)
    finally:
        engine.dispose()
    plot_series(series, path)
    click.echo(str(path))
