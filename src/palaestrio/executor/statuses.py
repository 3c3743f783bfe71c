"""The one writer of run statuses, in memory and in the store.

The governor only reports its outcome; what the run's status *is* gets decided and
written here, so the store, `Executor.experiment_runs()` and `on_update` never disagree.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from datetime import datetime

from palaestrio import messages
from palaestrio.executor.runs import ExperimentRunRuntimeInformation, RunSlot
from palaestrio.mdp.client import Client
from palaestrio.status import RunStatus
from palaestrio.store import messages as store_messages
from palaestrio.store.errors import StoreError
from palaestrio.store.sender import deliver, send_status

log = logging.getLogger("palaestrio.executor")

UpdateCallback = Callable[[ExperimentRunRuntimeInformation], None]

STATUS_RETRY_AFTER = 1.0
"""Seconds without a reply before a status event is sent again. A request the store
process took with it when it died gets no reply at all; its successor is up in about a
second, and a run's end must reach it well within `finalize_grace`. Resent status events
change nothing (the store keeps the first end it got)."""


class StatusBook:
    def __init__(self, client: Client, on_update: UpdateCallback | None) -> None:
        self.client = client
        self.on_update = on_update
        self.store_failure: str | None = None
        """Set once the store gave up: no run that ends after it counts as anything but
        `error` (its records or its end may be lost)."""

    def notify(self, info: ExperimentRunRuntimeInformation) -> None:
        if self.on_update is not None:
            self.on_update(info)

    async def scheduled(self, slot: RunSlot) -> None:
        """Stores the run as scheduled (and owned by this executor); idempotent."""
        run = slot.info.experiment_run
        await self._store(
            store_messages.Scheduled(
                slot.info.instance_uid,
                run_uid=run.uid,
                experiment_uid=run.experiment_uid or run.uid,
                time=_now().timestamp(),
                document=run.document,
                user=_user(),
                attempt=slot.info.attempt,
                retry_of=slot.info.retry_of,
            )
        )

    def starting(self, slot: RunSlot, governor_id: str) -> None:
        info = slot.info
        info.run_governor_id = governor_id
        info.status, info.started_at = RunStatus.STARTING, _now()
        self.notify(info)

    async def running(self, slot: RunSlot) -> None:
        info = slot.info
        info.experiment_run_id = info.experiment_run.uid
        await self._store(store_messages.Running(info.instance_uid, _now().timestamp()))
        info.status = RunStatus.RUNNING
        self.notify(info)

    def progress(self, slot: RunSlot, event: messages.RunProgress) -> None:
        slot.info.progress = event
        slot.info.steps = event.steps_total
        self.notify(slot.info)

    async def conclude(self, slot: RunSlot, status: RunStatus, reason: str | None) -> None:
        """Stores the run's terminal status; the store keeps the first one it got."""
        info = slot.info
        now = _now()
        if self.store_failure is not None and status is not RunStatus.ERROR:
            status, reason = RunStatus.ERROR, f"the store failed: {self.store_failure}"
        event: store_messages.StatusEvent
        if status is RunStatus.FINISHED:
            event = store_messages.Finished(info.instance_uid, now.timestamp())
        elif status is RunStatus.CANCELLED:
            event = store_messages.Cancelled(info.instance_uid, now.timestamp(), reason or "")
        else:
            event = store_messages.Failed(info.instance_uid, now.timestamp(), reason or "")
        stored = await self._store(event)
        if stored is None and status is not RunStatus.ERROR:
            # An end the store does not have is never shown as the run's end.
            status, reason = RunStatus.ERROR, f"its end ({status}) was not stored"
        info.status = RunStatus(stored) if stored else status
        info.reason = reason
        info.ended_at = now
        report = slot.report
        if report is not None:
            info.phases, info.episodes, info.steps = report.phases, report.episodes, report.steps
        self.notify(info)

    async def stored_runs(self, instance_uids: list[str]) -> list[store_messages.RunSummary] | None:
        """What the store has of these run instances; None when it cannot say."""
        if self.store_failure is not None:
            return None
        try:
            reply = await deliver(self.client, store_messages.Summarize(instance_uids))
        except StoreError as error:
            log.warning("cannot read the runs back from the store: %s", error)
            return None
        return reply.runs

    async def _store(self, event: store_messages.StatusEvent) -> str | None:
        """Sends a status event; returns the status the store now has.

        A store that refuses the event is logged, not raised: one run's bookkeeping
        problem must not take the other runs down. Once the store failed, nothing is
        sent: it would acknowledge nothing (or is not even there to answer)."""
        if self.store_failure is not None:
            log.error(
                "run %s: %s not stored (the store failed)", event.instance_uid, type(event).__name__
            )
            return None
        try:
            return await send_status(self.client, event, retry_after=STATUS_RETRY_AFTER)
        except StoreError as error:
            log.error(
                "the store refused %s for run %s: %s",
                type(event).__name__,
                event.instance_uid,
                error,
            )
            return None


def _now() -> datetime:
    return datetime.now().astimezone()


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
