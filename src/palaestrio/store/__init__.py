"""The store: every record of every run in SQLite or PostgreSQL, with an exact status.

Executor: `await nursery.start(partial(serve, store_uri, broker_endpoint,
executor_id=...))` runs the MDP service "store" (or `python -m palaestrio.store --uri URI
--broker ENDPOINT`) as the owner of the runs it schedules, and `send_status(client,
Scheduled(...))` etc. record a run's status. RunGovernor: `async with
open_store_sink(client, instance_uid) as sink:` gives a `RecordSink`; a store that does
not own the run raises `RunNotOwned`. Reading: `reap_lost_runs(engine)` (runs whose
executor is gone become `error`), `list_runs(open_database(uri))`, `run_details(engine,
uid)`.
"""

# Submodules load on first use: a RunGovernor needs the sender and the messages, not
# SQLAlchemy (whose import alone costs a few tenths of a second at every run start).
from __future__ import annotations

from typing import TYPE_CHECKING

from palaestrio._lazy import lazy_attributes

_WHERE = {
    "DEFAULT_LEASE_SECONDS": "ownership",
    "LostRun": "ownership",
    "new_executor_id": "ownership",
    "reap_lost_runs": "ownership",
    "LeaseLost": "errors",
    "RunNotOwned": "errors",
    "create_database": "engine",
    "open_database": "engine",
    "parse_store_uri": "engine",
    "SchemaVersionError": "errors",
    "StoreError": "errors",
    "StoreRejected": "errors",
    "Acknowledged": "messages",
    "Cancelled": "messages",
    "Failed": "messages",
    "Finished": "messages",
    "RecordBatch": "messages",
    "Rejected": "messages",
    "Running": "messages",
    "Scheduled": "messages",
    "StatusEvent": "messages",
    "PhaseSummary": "queries",
    "RunDetails": "queries",
    "RunSummary": "queries",
    "UnknownRun": "queries",
    "list_runs": "queries",
    "run_details": "queries",
    "SCHEMA_VERSION": "schema",
    "StoreSink": "sender",
    "deliver": "sender",
    "open_store_sink": "sender",
    "send_status": "sender",
    "SERVICE": "messages",
    "StoreService": "service",
    "serve": "service",
}

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "SCHEMA_VERSION",
    "SERVICE",
    "Acknowledged",
    "Cancelled",
    "Failed",
    "Finished",
    "LeaseLost",
    "LostRun",
    "PhaseSummary",
    "RecordBatch",
    "Rejected",
    "RunDetails",
    "RunNotOwned",
    "RunSummary",
    "Running",
    "Scheduled",
    "SchemaVersionError",
    "StatusEvent",
    "StoreError",
    "StoreRejected",
    "StoreService",
    "StoreSink",
    "UnknownRun",
    "create_database",
    "deliver",
    "list_runs",
    "new_executor_id",
    "open_database",
    "open_store_sink",
    "parse_store_uri",
    "reap_lost_runs",
    "run_details",
    "send_status",
    "serve",
]


__getattr__ = lazy_attributes(__name__, _WHERE)


if TYPE_CHECKING:
    from palaestrio.store.engine import create_database, open_database, parse_store_uri
    from palaestrio.store.errors import (
        LeaseLost,
        RunNotOwned,
        SchemaVersionError,
        StoreError,
        StoreRejected,
    )
    from palaestrio.store.messages import (
        SERVICE,
        Acknowledged,
        Cancelled,
        Failed,
        Finished,
        RecordBatch,
        Rejected,
        Running,
        Scheduled,
        StatusEvent,
    )
    from palaestrio.store.ownership import (
        DEFAULT_LEASE_SECONDS,
        LostRun,
        new_executor_id,
        reap_lost_runs,
    )
    from palaestrio.store.queries import (
        PhaseSummary,
        RunDetails,
        RunSummary,
        UnknownRun,
        list_runs,
        run_details,
    )
    from palaestrio.store.schema import SCHEMA_VERSION
    from palaestrio.store.sender import StoreSink, deliver, open_store_sink, send_status
    from palaestrio.store.service import StoreService, serve
