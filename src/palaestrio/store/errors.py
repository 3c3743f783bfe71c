"""The store's exceptions: one domain exception for callers, with specific subclasses."""

from __future__ import annotations

from palaestrio.errors import PalaestrioError


class StoreError(PalaestrioError):
    """Something about the store (its URI, database, schema or service) is wrong."""


class SchemaVersionError(StoreError):
    """The database was created by a palaestrio with another schema version."""


class StoreRejected(StoreError):
    """The store service refused a request; the message names the problem."""


class RunNotOwned(StoreRejected):
    """The store service refused a request for a run instance its executor does not own.

    The instance is unknown, or another executor scheduled it: a RunGovernor that gets
    this for its records belongs to an executor that is gone, and should exit.
    """


class LeaseLost(StoreError):
    """The store could not renew its executor's lease for longer than the lease lasts.

    Another executor may have declared this one's runs lost by now, so the store service
    stops instead of writing on as an owner it may no longer be.
    """


class RequestRejected(Exception):
    """Raised inside the writer for a request that can never succeed as sent.

    The service turns it into an error reply; it never leaves the store.
    """


class RequestNotOwned(RequestRejected):
    """Raised inside the writer for a run instance this store's executor does not own."""


class StoreFailed(StoreError):
    """The store stopped writing for good (its database file is gone, or writes kept
    failing past the retry budget); nothing more it is sent will be acknowledged."""
