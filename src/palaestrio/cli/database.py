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


@cli.command("database-migrate")
@store_option
@click.pass_obj
def database_migrate(options: Options, store_uri: str | None) -> None:
    """Bring the store database's tables to this palaestrio's schema (Alembic)."""
    from palaestrio.store.engine import describe
    from palaestrio.store.migrate import migrate

    config = options.config(store_uri=store_uri)
    before, after = migrate(config.store_uri)
    where = describe(config.store_uri)
    if before == after:
        click.echo(f"store database {where} is current (revision {after})")
    else:
        click.echo(f"store database {where} migrated from {before or 'unversioned'} to {after}")
