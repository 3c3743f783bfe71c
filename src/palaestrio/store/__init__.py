"""The store: every record of every run in SQLite or PostgreSQL, with an exact status.

Executor: `await nursery.start(serve, store_uri, broker_endpoint)` runs the MDP service
"store" (or `python -m palaestrio.store --uri URI --broker ENDPOINT`), and
`send_status(client, Scheduled(...))` etc. record a run's status. RunGovernor:
`async with open_store_sink(client, instance_uid) as sink:` gives a `RecordSink`.
Reading: `list_runs(open_database(uri))`, `run_details(engine, uid)`.
"""

from palaestrio.store.engine import create_database, open_database, parse_store_uri
from palaestrio.store.errors import SchemaVersionError, StoreError, StoreRejected
from palaestrio.store.messages import (
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
from palaestrio.store.service import SERVICE, StoreService, serve

__all__ = [
    "SCHEMA_VERSION",
    "SERVICE",
    "Acknowledged",
    "Cancelled",
    "Failed",
    "Finished",
    "PhaseSummary",
    "RecordBatch",
    "Rejected",
    "RunDetails",
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
    "open_database",
    "open_store_sink",
    "parse_store_uri",
    "run_details",
    "send_status",
    "serve",
]
