"""The store's exceptions: one domain exception for callers, with specific subclasses."""

from __future__ import annotations

from palaestrio.errors import PalaestrioError


class StoreError(PalaestrioError):
    """Something about the store (its URI, database, schema or service) is wrong."""


class SchemaVersionError(StoreError):
    """The database was created by a palaestrio with another schema version."""


class StoreRejected(StoreError):
    """The store service refused a request; the message names the problem."""


class RequestRejected(Exception):
    """Raised inside the writer for a request that can never succeed as sent.

    The service turns it into an error reply; it never leaves the store.
    """
