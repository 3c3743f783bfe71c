"""`database-create`."""

from __future__ import annotations

import click

from .group import Options, cli, store_option


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
