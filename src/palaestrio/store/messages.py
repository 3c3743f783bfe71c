"""What travels to and from the store service: tagged msgspec Structs as msgpack.

A request is one frame holding one `StoreRequest`; the reply is one frame holding one
`StoreReply`. Times are seconds since the epoch (`time.time()`), taken by the sender,
so a resent event or batch carries the same time and changes nothing.
"""

from __future__ import annotations

import datetime

import msgspec

from palaestrio.records import Record
from palaestrio.status import RunStatus

SERVICE = "store"
"""The MDP service name of the store."""


class RecordBatch(msgspec.Struct, frozen=True, tag="records"):
    """Records of one run instance, written in one transaction.

    `sequence` counts a sender's batches from 1; a resent batch keeps its number.
    """

    instance_uid: str
    sequence: int
    records: list[Record]


class Scheduled(msgspec.Struct, frozen=True, tag="scheduled"):
    """The executor accepted a run: creates the instance (and experiment and run rows),
    owned by the executor of the store service that receives it."""

    instance_uid: str
    run_uid: str
    experiment_uid: str
    time: float
    document: str | None = None
    """The run's experiment file (YAML text), stored with the run."""
    user: str | None = None
    attempt: int = 1
    retry_of: str | None = None
    """The first attempt's instance uid, for a retry."""


class Running(msgspec.Struct, frozen=True, tag="running"):
    instance_uid: str
    time: float


class Finished(msgspec.Struct, frozen=True, tag="finished"):
    instance_uid: str
    time: float


class Failed(msgspec.Struct, frozen=True, tag="error"):
    instance_uid: str
    time: float
    reason: str


class Cancelled(msgspec.Struct, frozen=True, tag="cancelled"):
    instance_uid: str
    time: float
    reason: str


class Summarize(msgspec.Struct, frozen=True, tag="summarize"):
    """Asks for the `RunSummary` of each of these run instances the store has (the
    command line's closing table, without SQLAlchemy in the executor's process)."""

    instance_uids: list[str]


SHORT_UID_LENGTH = 8
"""The shortest instance-uid prefix `run_details` accepts (what the CLI shows, as git)."""


class RunSummary(msgspec.Struct, frozen=True):
    run_uid: str
    instance_uid: str
    experiment_uid: str
    status: RunStatus
    scheduled: datetime.datetime | None
    started: datetime.datetime | None
    ended: datetime.datetime | None
    reason: str | None
    """Why the run ended in `error` or `cancelled`."""
    phases: int
    episodes: int
    steps: int
    attempt: int = 1
    retry_of: str | None = None
    """The instance uid of the run's first attempt, if this one is a retry."""


StatusEvent = Scheduled | Running | Finished | Failed | Cancelled
StoreRequest = RecordBatch | Scheduled | Running | Finished | Failed | Cancelled | Summarize


class Acknowledged(msgspec.Struct, frozen=True, tag="ok"):
    """The request is committed.

    `written`: records in the acknowledged batch. `status`: the instance's status after
    a status event (a duplicate or late event leaves it unchanged, and this says so).
    """

    written: int = 0
    status: RunStatus | None = None
    runs: list[RunSummary] = msgspec.field(default_factory=list)
    """What a `Summarize` asked for."""


class Rejected(msgspec.Struct, frozen=True, tag="error"):
    """The request was not written; `message` names the problem.

    `retryable`: the problem is transient (database locked or unreachable); send the
    same request again later. Otherwise the request can never succeed as sent.
    `not_owned`: the run instance is not one this store's executor scheduled (unknown,
    or another executor's); the sender raises `RunNotOwned`. Never retryable.
    """

    message: str
    retryable: bool = False
    not_owned: bool = False


StoreReply = Acknowledged | Rejected

_encoder = msgspec.msgpack.Encoder()
_request_decoder: msgspec.msgpack.Decoder[StoreRequest] = msgspec.msgpack.Decoder(StoreRequest)
_reply_decoder: msgspec.msgpack.Decoder[StoreReply] = msgspec.msgpack.Decoder(StoreReply)


def encode(message: StoreRequest | StoreReply) -> bytes:
    return _encoder.encode(message)


def decode_request(frame: bytes) -> StoreRequest:
    """Raises `msgspec.DecodeError` (or its `ValidationError`) for a malformed frame."""
    return _request_decoder.decode(frame)


def decode_reply(frame: bytes) -> StoreReply:
    return _reply_decoder.decode(frame)
