"""Alembic's environment: runs on the connection `palaestrio.store.migrate` hands over
(no alembic.ini, no URL of its own)."""

from alembic import context

from palaestrio.store import schema

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=schema.metadata)
with context.begin_transaction():
    context.run_migrations()
