"""`runtime-config-show-default` and `runtime-config-show-effective`."""

from __future__ import annotations

import click

from palaestrio.config import DEFAULT_TEXT

from .group import Options, cli


@cli.command("runtime-config-show-default")
def runtime_config_show_default() -> None:
    """Print the default runtime configuration (a commented YAML file)."""
    click.echo(DEFAULT_TEXT, nl=False)


@cli.command("runtime-config-show-effective")
@click.pass_obj
def runtime_config_show_effective(options: Options) -> None:
    """Print the configuration in effect here, with where each value came from."""
    click.echo(options.config().to_yaml(), nl=False)
