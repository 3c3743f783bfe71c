"""The RunGovernor process: executes one experiment run (``python -m palaestrio.governor``).

It serves MDP service ``governor.<id>`` for the executor's start and shutdown requests,
runs the simulation in this process, streams its records to the store service
(batches are kept until acknowledged), tells the executor how far it is, and at the
end stores its final status, sends the executor its report and exits 0. A shutdown
request stops the run at the next step boundary; everything up to that step is
stored. The governor sets no signal handlers: SIGTERM and SIGKILL are the executor's
kill path, used only when the graceful way did not work.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from functools import partial

import msgspec
import setproctitle
import trio

from palaestrio import messages
from palaestrio.experiment.model import ExperimentRun
from palaestrio.mdp import protocol as mdp
from palaestrio.mdp.client import Client, open_client
from palaestrio.mdp.worker import serve_worker
from palaestrio.progress import ProgressTap
from palaestrio.simulation import ComponentError, run_in_process
from palaestrio.store import messages as store_messages
from palaestrio.store.sender import open_store_sink, send_status

log = logging.getLogger("palaestrio.governor")

PROGRESS_INTERVAL = 0.2
"""Seconds between progress messages at most (episode starts are sent at once)."""


class Governor:
    def __init__(self, client: Client, instance_uid: str, nursery: trio.Nursery) -> None:
        self.client = client
        self.instance_uid = instance_uid
        self.nursery = nursery
        self.started = False
        self.stop = trio.Event()
        self.stop_reason = "shutdown requested"
        self.done = trio.Event()

    async def handle(self, frames: list[bytes]) -> list[bytes]:
        """MDP handler of ``governor.<id>``."""
        try:
            request = messages.governor_request_decoder.decode(frames[0] if frames else b"")
        except msgspec.DecodeError as problem:
            log.warning("malformed request: %s", problem)
            return [messages.encode(messages.ExperimentRunStartResponse(False, str(problem)))]
        if isinstance(request, messages.ExperimentRunStartRequest):
            return [messages.encode(self.start(request))]
        log.info("shutdown requested: %s", request.reason)
        self.stop_reason = request.reason
        self.stop.set()
        if not self.started:
            self.done.set()
        return [messages.encode(messages.ExperimentRunShutdownResponse(True))]

    def start(
        self, request: messages.ExperimentRunStartRequest
    ) -> messages.ExperimentRunStartResponse:
        if self.started:
            return messages.ExperimentRunStartResponse(False, "the run is already started")
        if request.instance_uid != self.instance_uid:
            return messages.ExperimentRunStartResponse(
                False,
                f"this governor runs instance {self.instance_uid}, not {request.instance_uid}",
            )
        self.started = True
        log.debug("start request for run %s", request.experiment_run.uid)
        self.nursery.start_soon(self.execute, request.experiment_run)
        return messages.ExperimentRunStartResponse(True)

    async def execute(self, run: ExperimentRun) -> None:
        status: messages.TerminalStatus = "finished"
        reason: str | None = None
        summary = None
        async with open_store_sink(self.client, self.instance_uid) as store_sink:
            await send_status(self.client, store_messages.Running(self.instance_uid, time.time()))
            async with trio.open_nursery() as nursery:
                tap = ProgressTap(store_sink, self.instance_uid, run)
                nursery.start_soon(self.report_progress, tap)
                try:
                    summary = await run_in_process(run, tap, stop=self.stop)
                    log.debug("simulation done: %s", summary)
                except ComponentError as error:
                    log.error("%s", error)
                    status, reason = "error", str(error)
                else:
                    if summary.stopped:
                        status, reason = "cancelled", self.stop_reason
                nursery.cancel_scope.cancel()
        # Leaving the sink's block waited until the store acknowledged every record.
        log.debug("every record is stored")
        now = time.time()
        event: store_messages.StatusEvent
        if status == "finished":
            event = store_messages.Finished(self.instance_uid, now)
        elif status == "cancelled":
            event = store_messages.Cancelled(self.instance_uid, now, reason or "")
        else:
            event = store_messages.Failed(self.instance_uid, now, reason or "")
        await send_status(self.client, event)
        report = messages.RunReport(
            self.instance_uid,
            status,
            reason,
            phases=tap.phases,
            episodes=tap.episodes,
            steps=tap.steps,
        )
        await self.client.request(messages.EXECUTOR_SERVICE, messages.encode(report))
        log.debug("reported %s to the executor", status)
        self.done.set()

    async def report_progress(self, tap: ProgressTap) -> None:
        while True:
            await tap.changed.wait()
            tap.changed = trio.Event()
            progress = tap.progress()
            if progress is not None:
                await self.client.request(messages.EXECUTOR_SERVICE, messages.encode(progress))
            await trio.sleep(PROGRESS_INTERVAL)


async def governor_main(
    broker: str,
    governor_id: str,
    instance_uid: str,
    heartbeat_interval: float,
    heartbeat_liveness: int,
) -> None:
    log.debug("governor process up")
    async with open_client(broker) as client, trio.open_nursery() as nursery:
        governor = Governor(client, instance_uid, nursery)
        await nursery.start(
            partial(
                serve_worker,
                broker,
                messages.governor_service(governor_id),
                governor.handle,
                heartbeat_interval=heartbeat_interval,
                heartbeat_liveness=heartbeat_liveness,
            )
        )
        await governor.done.wait()
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m palaestrio.governor")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--governor-id", required=True)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--run-uid", required=True)
    parser.add_argument("--heartbeat-interval", type=float, default=mdp.DEFAULT_HEARTBEAT_INTERVAL)
    parser.add_argument("--heartbeat-liveness", type=int, default=mdp.DEFAULT_HEARTBEAT_LIVENESS)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setproctitle.setproctitle(f"palaestrio[governor:{args.run_uid}]")
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    trio.run(
        governor_main,
        args.broker,
        args.governor_id,
        args.instance,
        args.heartbeat_interval,
        args.heartbeat_liveness,
    )
    # Everything is stored and reported, and every socket closed: skip the interpreter's
    # teardown (module cleanup, zmq context, thread pools), a fifth of a second per run.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
