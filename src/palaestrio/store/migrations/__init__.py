"""The store's schema migrations (Alembic): `palaestrio database-migrate` brings a store
made by an earlier palaestrio to this one's schema (`palaestrio.store.migrate`).

The history starts with `v0001_baseline`, the schema of version 3. To change the
schema: change `palaestrio.store.schema`, bump `SCHEMA_VERSION`, add a revision in
`versions/` (`down_revision` the previous head) whose `upgrade()` changes the tables
and sets `palaestrio_schema.version`, and map the new version to it in
`palaestrio.store.migrate.REVISIONS`. `tests/test_store_migrations.py` checks that the
head revision makes exactly the tables of `schema`.
"""
