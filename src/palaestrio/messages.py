"""Messages between the executor and its RunGovernors (msgpack-encoded msgspec Structs).

The executor is an MDP client of each governor's service ``governor.<id>`` (start and
shutdown requests), and each governor is a client of the executor's service
``executor`` (progress and its final report). No pickle anywhere.
"""

from __future__ import annotations

import msgspec

from palaestrio.experiment.model import ExperimentRun
from palaestrio.status import RunStatus

EXECUTOR_SERVICE = "executor"


def governor_service(governor_id: str) -> str:
    return f"governor.{governor_id}"


class ExperimentRunStartRequest(msgspec.Struct, frozen=True, tag=True):
    instance_uid: str
    experiment_run: ExperimentRun


class ExperimentRunStartResponse(msgspec.Struct, frozen=True, tag=True):
    successful: bool
    error: str | None = None


class ExperimentRunShutdownRequest(msgspec.Struct, frozen=True, tag=True):
    instance_uid: str
    reason: str


class ExperimentRunShutdownResponse(msgspec.Struct, frozen=True, tag=True):
    successful: bool
    error: str | None = None


class RunProgress(msgspec.Struct, frozen=True, tag=True):
    """Where a run is; sent at most a few times a second and at every episode start."""

    instance_uid: str
    phase: int
    phase_name: str
    worker: int
    episode: int
    step: int
    steps_total: int
    """Steps done in the whole run so far (all workers)."""


class RunReport(msgspec.Struct, frozen=True, tag=True):
    """A governor's last word: its outcome, sent after every record is stored. The
    executor writes the run's status from it."""

    instance_uid: str
    status: RunStatus
    reason: str | None
    phases: int
    episodes: int
    steps: int


class Ack(msgspec.Struct, frozen=True, tag=True):
    pass


GovernorRequest = ExperimentRunStartRequest | ExperimentRunShutdownRequest
GovernorResponse = ExperimentRunStartResponse | ExperimentRunShutdownResponse
ExecutorEvent = RunProgress | RunReport

_encoder = msgspec.msgpack.Encoder()
encode = _encoder.encode
governor_request_decoder = msgspec.msgpack.Decoder(GovernorRequest)
governor_response_decoder = msgspec.msgpack.Decoder(GovernorResponse)
executor_event_decoder = msgspec.msgpack.Decoder(ExecutorEvent)
