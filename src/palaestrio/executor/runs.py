"""What the executor knows about each run instance."""

from __future__ import annotations

import enum
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import trio

from palaestrio import messages
from palaestrio.executor.launch import Child
from palaestrio.executor.options import ExecutorOptions
from palaestrio.experiment.model import ExperimentRun
from palaestrio.status import RunStatus

log = logging.getLogger("palaestrio.executor")


class ExecutorState(enum.Enum):
    PRISTINE = 0
    INITIALIZED = 1
    RUNNING = 2
    SHUTDOWN = 3
    EXITED = 4
    SIGINT = 5
    SIGABRT = 6
    SIGTERM = 7
    SIGHUP = 8


@dataclass
class ExperimentRunRuntimeInformation:
    """What the executor knows about one scheduled run (one *instance* of a run)."""

    experiment_run: ExperimentRun
    instance_uid: str
    status: RunStatus = RunStatus.SCHEDULED
    reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    run_governor_id: str | None = None
    pid: int | None = None
    """The RunGovernor's process id (its process group id, too) while it runs."""
    experiment_run_id: str | None = None
    """The run's uid once it runs (as in palaestrAI)."""
    progress: messages.RunProgress | None = None
    phases: int = 0
    episodes: int = 0
    steps: int = 0
    attempt: int = 1
    retry_of: str | None = None
    """The first attempt's instance uid, for a retry."""
    retried_by: str | None = None
    """The next attempt's instance uid, once this one ended `error` and is retried."""

    @property
    def is_running(self) -> bool:
        return self.status.is_active

    @property
    def is_done(self) -> bool:
        return self.status.is_terminal


@dataclass(eq=False)
class RunSlot:
    """The executor's private handle on one run instance."""

    info: ExperimentRunRuntimeInformation
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    cancel_reason: str | None = None
    child: Child | None = None
    report: messages.RunReport | None = None
    failure: str | None = None
    """Why supervising the run failed (a launcher or transport error), one line."""
    ended: trio.Event = field(default_factory=trio.Event)
    cancelled: trio.Event = field(default_factory=trio.Event)
    lost: trio.Event = field(default_factory=trio.Event)
    """Set when the broker forgot the governor's worker: silent for interval × liveness
    (its machine is gone, or it hangs); the failure detector for every launcher."""

    def matches(self, run_id: str) -> bool:
        return run_id in (self.info.instance_uid, self.info.experiment_run.uid)

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.scope.cancel()
        self.cancelled.set()

    def retry(self, options: ExecutorOptions) -> tuple[RunSlot, float] | None:
        """The slot of this run's next attempt and the back-off before it, if this one
        ended `error` (not cancelled) and retries are left; else None."""
        info = self.info
        if info.status is not RunStatus.ERROR or self.cancel_reason is not None:
            return None
        if info.attempt > options.retries:
            return None
        retry = RunSlot(
            ExperimentRunRuntimeInformation(
                info.experiment_run,
                uuid.uuid4().hex,
                attempt=info.attempt + 1,
                retry_of=info.retry_of or info.instance_uid,
            )
        )
        info.retried_by = retry.info.instance_uid
        delay = options.retry_delay(info.attempt)
        log.warning(
            "run %s (instance %s) ended in error; attempt %d of %d in %g s",
            info.experiment_run.uid,
            info.instance_uid,
            retry.info.attempt,
            options.retries + 1,
            delay,
        )
        return retry, delay


def final_attempts(
    infos: list[ExperimentRunRuntimeInformation],
) -> list[ExperimentRunRuntimeInformation]:
    """Each run's last attempt (what a batch's outcome is)."""
    return [info for info in infos if info.retried_by is None]
