"""The life of one RunGovernor, in order.

1. Serve MDP service ``governor.<id>`` (start and shutdown requests). The broker is the
   executor's: losing it is fatal (`serve_worker(reconnect=False)`), never a reason to
   look for another.
2. Await the start request; a shutdown before it ends the governor at once.
3. Run the simulation, records streaming to the store (kept until acknowledged); a
   shutdown request stops it at the next step boundary.
4. Report the outcome to the executor, which alone writes the run's status.

A store that refuses the run's records as not its executor's means this governor
outlived its executor: it ends at once, without a report.
"""

from __future__ import annotations

import logging
import signal
from functools import partial

import msgspec
import setproctitle
import trio

from palaestrio import messages
from palaestrio.experiment.model import ExperimentRun
from palaestrio.governor import lifeline
from palaestrio.governor.lifeline import EXIT_PARENT_LOST
from palaestrio.mdp.client import Client, open_client
from palaestrio.mdp.worker import serve_worker
from palaestrio.progress import ProgressTap
from palaestrio.simulation import ComponentError, run_in_process
from palaestrio.status import RunStatus
from palaestrio.store.errors import RunNotOwned, StoreError
from palaestrio.store.sender import StoreSink, open_store_sink

log = logging.getLogger("palaestrio.governor")

PROGRESS_INTERVAL = 0.2
"""Seconds between progress messages at most (episode starts are sent at once)."""


class Inbox:
    """What the executor asked for: the MDP handler's side of the governor."""

    def __init__(self, instance_uid: str | None) -> None:
        self.instance_uid = instance_uid
        """None until the start request names it (a governor started ahead of its run)."""
        self.run: ExperimentRun | None = None
        self.decided = trio.Event()
        """Set by a start request, or by a shutdown before one."""
        self.stop = trio.Event()
        self.stop_reason = "shutdown requested"

    async def handle(self, frames: list[bytes]) -> list[bytes]:
        try:
            request = messages.governor_request_decoder.decode(frames[0] if frames else b"")
        except msgspec.DecodeError as problem:
            log.warning("malformed request: %s", problem)
            return [messages.encode(messages.ExperimentRunStartResponse(False, str(problem)))]
        if isinstance(request, messages.ExperimentRunStartRequest):
            return [messages.encode(self._start(request))]
        log.info("shutdown requested: %s", request.reason)
        self.stop_reason = request.reason
        self.stop.set()
        self.decided.set()
        return [messages.encode(messages.ExperimentRunShutdownResponse(True))]

    def _start(
        self, request: messages.ExperimentRunStartRequest
    ) -> messages.ExperimentRunStartResponse:
        if self.decided.is_set():
            return messages.ExperimentRunStartResponse(False, "the run is already started")
        if self.instance_uid not in (None, request.instance_uid):
            return messages.ExperimentRunStartResponse(
                False,
                f"this governor runs instance {self.instance_uid}, not {request.instance_uid}",
            )
        self.instance_uid = request.instance_uid
        self.run = request.experiment_run
        setproctitle.setproctitle(f"palaestrio[governor:{self.run.uid}]")
        self.decided.set()
        return messages.ExperimentRunStartResponse(True)


async def serve_run(
    broker: str,
    governor_id: str,
    instance_uid: str | None,
    *,
    heartbeat_interval: float,
    heartbeat_liveness: int,
) -> None:
    inbox = Inbox(instance_uid)
    async with open_client(broker) as client, trio.open_nursery() as nursery:
        await nursery.start(
            partial(
                serve_worker,
                broker,
                messages.governor_service(governor_id),
                inbox.handle,
                heartbeat_interval=heartbeat_interval,
                heartbeat_liveness=heartbeat_liveness,
                reconnect=False,
            )
        )
        nursery.start_soon(stop_at_time_limit, inbox)
        await inbox.decided.wait()
        if inbox.run is not None and inbox.instance_uid is not None:
            report = await execute(client, inbox.instance_uid, inbox.run, inbox)
            await client.request(messages.EXECUTOR_SERVICE, messages.encode(report))
            log.debug("reported %s to the executor", report.status)
        nursery.cancel_scope.cancel()


TIME_LIMIT_SIGNAL = signal.SIGUSR1
"""What Slurm sends ahead of a time limit (``--signal=USR1@120``)."""


async def stop_at_time_limit(inbox: Inbox) -> None:
    """Turns Slurm's time-limit warning into a graceful stop, stored as cancelled."""
    with trio.open_signal_receiver(TIME_LIMIT_SIGNAL) as signals:
        async for _ in signals:
            log.warning("time limit ahead: stopping the run")
            inbox.stop_reason = "time limit"
            inbox.stop.set()
            inbox.decided.set()
            return


async def execute(
    client: Client, instance_uid: str, run: ExperimentRun, inbox: Inbox
) -> messages.RunReport:
    """Runs the simulation with every record stored; returns the outcome."""
    status, reason = RunStatus.FINISHED, None
    tap: ProgressTap | None = None
    try:
        async with open_store_sink(client, instance_uid) as sink, trio.open_nursery() as nursery:
            tap = ProgressTap(sink, instance_uid, run)
            nursery.start_soon(report_progress, client, tap)
            nursery.start_soon(hasten_when_stopped, inbox, sink)
            try:
                summary = await run_in_process(run, tap, stop=inbox.stop)
            except ComponentError as error:
                # The report carries it to the executor, which shows it: said once.
                log.info("run failed: %s", error)
                status, reason = RunStatus.ERROR, str(error)
            else:
                if summary.stopped:
                    status, reason = RunStatus.CANCELLED, inbox.stop_reason
            nursery.cancel_scope.cancel()
        # Leaving the sink's block waited until the store acknowledged every record.
    except* RunNotOwned as refused:
        lifeline.die(f"the store refuses this run: {refused.exceptions[0]}", EXIT_PARENT_LOST)
    except* StoreError as failed:
        status, reason = RunStatus.ERROR, f"storing records failed: {failed.exceptions[0]}"
    return messages.RunReport(
        instance_uid,
        status,
        reason,
        phases=tap.phases if tap else 0,
        episodes=tap.episodes if tap else 0,
        steps=tap.steps if tap else 0,
    )


async def hasten_when_stopped(inbox: Inbox, sink: StoreSink) -> None:
    """A stop (^C) must not wait out the sink's pause between resends to a store that
    refuses writes for now: the stopping store decides at the next one."""
    await inbox.stop.wait()
    sink.hasten()


async def report_progress(client: Client, tap: ProgressTap) -> None:
    while True:
        await tap.changed.wait()
        tap.changed = trio.Event()
        progress = tap.progress()
        if progress is not None:
            await client.request(messages.EXECUTOR_SERVICE, messages.encode(progress))
        await trio.sleep(PROGRESS_INTERVAL)
