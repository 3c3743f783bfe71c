"""One run's supervision: launch its governor, start it, stop it, record how it ended.

`supervise` is the run's error boundary: an unexpected exception here (the launcher
failing to spawn, a transport error) marks this run `error`, with the traceback in the
log and one line in the store, and the other runs go on. Only cancellation leaves it.

Stopping is graceful first: when the run's cancel scope (or an outer one) is cancelled,
the governor gets a shutdown request and ``cancel_grace`` seconds to stop at a step
boundary, flush and report. Only then is the launcher's kill path run (SIGTERM, SIGKILL
after ``term_grace``, the whole process tree).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import trio

from palaestrio import messages
from palaestrio.curve import CurveServer
from palaestrio.errors import single_error
from palaestrio.executor.governor_output import GovernorLines, RunLog
from palaestrio.executor.launch import Child, ChildExit, Launcher
from palaestrio.executor.options import ExecutorOptions
from palaestrio.executor.runs import RunSlot
from palaestrio.executor.statuses import StatusBook
from palaestrio.mdp.client import Client
from palaestrio.status import RunStatus
from palaestrio.store.run_logs import LOG_SUFFIX

log = logging.getLogger("palaestrio.executor")


@dataclass(frozen=True)
class RunContext:
    """What every run's supervision shares."""

    client: Client
    endpoint: str
    launcher: Launcher
    book: StatusBook
    options: ExecutorOptions
    on_cancelled: Callable[[], None]
    """Called when outside cancellation reaches a run (bounds the services' shield)."""
    curve_server: CurveServer | None = None
    """With it, each governor gets a CURVE key pair of its own, revoked when it ends."""
    run_log_dir: Path | None = None
    """Where each run's whole governor output goes (`palaestrio.store.run_logs`)."""


async def supervise(slot: RunSlot, context: RunContext) -> None:
    """Runs one run to its end and records that end; never raises but Cancelled."""
    governor_id = uuid.uuid4().hex[:12]
    context.book.starting(slot, governor_id)
    exit_: ChildExit | None = None
    try:
        if not slot.scope.cancel_called:
            exit_ = await _run_governor(slot, context, governor_id)
    except Exception as error:
        problem = single_error(error)
        log.error("run %s: supervision failed", slot.info.instance_uid, exc_info=problem)
        slot.failure = f"{type(problem).__name__}: {problem}".splitlines()[0]
    finally:
        with trio.move_on_after(context.options.finalize_grace, shield=True):
            status, reason = outcome(slot, exit_)
            await context.book.conclude(slot, status, reason)
        slot.ended.set()


def governor_environment() -> dict[str, str]:
    """Governors import components by name: give them the executor's import path.
    SPT_NOENV keeps setproctitle off their environment, which stays readable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["SPT_NOENV"] = "1"
    return env


def governor_argv(context: RunContext, slot: RunSlot, governor_id: str) -> list[str]:
    options = context.options
    return [
        sys.executable,
        "-m",
        "palaestrio.governor",
        "--broker",
        context.endpoint,
        "--governor-id",
        governor_id,
        "--instance",
        slot.info.instance_uid,
        "--run-uid",
        slot.info.experiment_run.uid,
        "--heartbeat-interval",
        str(options.heartbeat_interval),
        "--heartbeat-liveness",
        str(options.heartbeat_liveness),
        "--log-level",
        options.governor_log_level,
    ]


async def _run_governor(slot: RunSlot, context: RunContext, governor_id: str) -> ChildExit:
    argv = governor_argv(context, slot, governor_id)
    keys = context.curve_server.admit() if context.curve_server is not None else None
    # Shielded from outside cancellation once the governor runs: it gets the graceful
    # way first, then this scope is cancelled and the launcher's kill path runs.
    kill_scope = trio.CancelScope()
    exits: list[ChildExit] = []

    async def launch(task_status: trio.TaskStatus[Child]) -> None:
        with kill_scope:
            exit_ = await context.launcher.run(
                argv,
                name=slot.info.experiment_run.uid,
                env=keys.environment() if keys is not None else None,
                on_output_line=GovernorLines(slot.info.experiment_run.uid, _run_log(slot, context)),
                task_status=_ShieldedOnceStarted(task_status, kill_scope),
            )
            exits.append(exit_)  # the launcher may add the engine's reason to child.exit

    try:
        async with trio.open_nursery() as nursery:
            child: Child = await nursery.start(launch)
            try:
                await _supervise_child(slot, context, child, governor_id)
            finally:
                kill_scope.cancel()  # a no-op once the governor has exited
    finally:
        if keys is not None and context.curve_server is not None:
            context.curve_server.revoke(keys)
    assert child.exit is not None
    return exits[0] if exits else child.exit


class _ShieldedOnceStarted(trio.TaskStatus[Child]):
    """Hands the started child on, shielding the launch from outside cancellation from
    then on. A launch cancelled before (trio's `start` then keeps the task and waits
    for it) stays unshielded: the launcher's kill path runs at once."""

    def __init__(self, status: trio.TaskStatus[Child], scope: trio.CancelScope) -> None:
        self.status = status
        self.scope = scope

    def started(self, value: Child | None = None) -> None:
        assert value is not None
        if trio.current_effective_deadline() != -math.inf:
            self.scope.shield = True
        self.status.started(value)


def _run_log(slot: RunSlot, context: RunContext) -> RunLog | None:
    if context.run_log_dir is None:
        return None
    path = context.run_log_dir / f"{slot.info.instance_uid}{LOG_SUFFIX}"
    return RunLog(path, context.options.run_log_max_bytes)


async def _supervise_child(
    slot: RunSlot, context: RunContext, child: Child, governor_id: str
) -> None:
    """Starts the governor and waits for its end; stops it gracefully when cancelled."""
    slot.child = child
    slot.info.pid = child.pid
    started = False
    try:
        with slot.scope:
            started = await _start(slot, context, child, governor_id)
            if started:
                # Started even if cancelled while storing it: the graceful way.
                await context.book.running(slot)
                await _gone(slot, child)
    except trio.Cancelled:
        if slot.cancel_reason is None:
            slot.cancel_reason = "the executor was cancelled"
        context.on_cancelled()
        raise
    finally:
        if slot.lost.is_set() and not child.exited.is_set():
            # Nobody to ask: straight to the launcher's kill path.
            options = context.options
            silence = options.heartbeat_interval * options.heartbeat_liveness
            slot.failure = f"governor lost (silent for {silence:g} s)"
        elif started and not child.exited.is_set():
            with trio.move_on_after(context.options.cancel_grace, shield=True):
                reason = slot.cancel_reason or "cancelled"
                request = messages.ExperimentRunShutdownRequest(slot.info.instance_uid, reason)
                await _ask(context.client, slot, child, governor_id, request)
                await child.exited.wait()


async def _gone(slot: RunSlot, child: Child) -> None:
    """Returns once the governor's process has exited or its heartbeats stopped."""
    async with trio.open_nursery() as race:
        for event in (child.exited, slot.lost):
            race.start_soon(_set_then_cancel, event, race.cancel_scope)


async def _set_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _ask(
    client: Client,
    slot: RunSlot,
    child: Child,
    governor_id: str,
    request: messages.GovernorRequest,
) -> messages.GovernorResponse | None:
    """Sends `request` to the run's governor; None if the governor exits first (its
    request would otherwise wait in the broker for a worker that never comes)."""
    response: messages.GovernorResponse | None = None
    async with trio.open_nursery() as race:

        async def ask() -> None:
            nonlocal response
            service = messages.governor_service(governor_id)
            reply = await client.request(service, messages.encode(request))
            try:
                response = messages.governor_response_decoder.decode(reply[0])
            except (msgspec.DecodeError, IndexError) as problem:
                slot.info.reason = f"malformed answer from the RunGovernor: {problem}"
            race.cancel_scope.cancel()

        async def watch_exit() -> None:
            await _gone(slot, child)
            race.cancel_scope.cancel()

        race.start_soon(ask)
        race.start_soon(watch_exit)
    return response


async def _start(slot: RunSlot, context: RunContext, child: Child, governor_id: str) -> bool:
    """Sends the start request; False when the governor died, refused or stayed mute."""
    info = slot.info
    request = messages.ExperimentRunStartRequest(info.instance_uid, info.experiment_run)
    response = None
    timeout = context.options.start_timeout
    with trio.move_on_after(timeout):
        response = await _ask(context.client, slot, child, governor_id, request)
    if isinstance(response, messages.ExperimentRunStartResponse) and response.successful:
        return True
    if isinstance(response, messages.ExperimentRunStartResponse):
        info.reason = f"the RunGovernor refused to start: {response.error}"
    elif not child.exited.is_set() and not slot.lost.is_set() and info.reason is None:
        info.reason = f"the RunGovernor did not answer within {timeout:g} s"
    return False


def outcome(slot: RunSlot, exit_: ChildExit | None) -> tuple[RunStatus, str | None]:
    """How the run ended, from what the governor reported and how its process ended."""
    report, info = slot.report, slot.info
    if report is not None:
        if exit_ is not None and exit_.returncode != 0:
            log.warning(
                "run %s: RunGovernor %s after reporting", info.instance_uid, exit_.describe()
            )
        return report.status, report.reason
    if slot.cancel_reason is not None and slot.failure is None:
        reason = slot.cancel_reason
        if exit_ is not None and exit_.returncode < 0:
            reason += f" (RunGovernor {exit_.describe()})"
        return RunStatus.CANCELLED, reason
    reason = slot.failure or info.reason or "the RunGovernor ended without reporting a final status"
    if slot.lost.is_set():
        # How the launcher then killed it says nothing; the engine's reason may.
        if exit_ is not None and exit_.engine_reason:
            reason += f"; {exit_.engine_reason}"
        return RunStatus.ERROR, reason
    if exit_ is not None:
        reason += f"; RunGovernor {exit_.describe()}"
        if exit_.engine_reason:
            reason += f"; {exit_.engine_reason}"
        if exit_.output_tail.strip():
            reason += "\n" + exit_.output_tail.strip()
    return RunStatus.ERROR, reason
