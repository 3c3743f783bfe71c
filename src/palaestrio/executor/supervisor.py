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
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import trio

from palaestrio import messages
from palaestrio.curve import CurveServer
from palaestrio.errors import single_error
from palaestrio.executor.governor_output import GovernorLines, RunLog
from palaestrio.executor.governors import Governor, GovernorPool, Spawn
from palaestrio.executor.launch import Child, ChildExit, Launcher
from palaestrio.executor.options import ExecutorOptions
from palaestrio.executor.runs import RunSlot
from palaestrio.executor.statuses import StatusBook
from palaestrio.mdp.client import Client
from palaestrio.status import RunStatus
from palaestrio.store.run_logs import LOG_SUFFIX

log = logging.getLogger("palaestrio.executor")
governor_log = logging.getLogger("palaestrio.governor")


@dataclass(frozen=True)
class RunContext:
    """What every run's supervision shares."""

    client: Client
    book: StatusBook
    options: ExecutorOptions
    governors: GovernorPool
    on_cancelled: Callable[[], None]
    """Called when outside cancellation reaches a run (bounds the services' shield)."""
    run_log_dir: Path | None = None
    """Where each run's whole governor output goes (`palaestrio.store.run_logs`)."""


async def supervise(slot: RunSlot, context: RunContext) -> None:
    """Runs one run to its end and records that end; never raises but Cancelled."""
    exit_: ChildExit | None = None
    try:
        if not slot.scope.cancel_called:
            exit_ = await _run_governor(slot, context)
    except Exception as error:
        problem = single_error(error)
        log.error("run %s: supervision failed", slot.info.instance_uid, exc_info=problem)
        slot.failure = f"{type(problem).__name__}: {problem}".splitlines()[0]
    finally:
        grace = context.options.finalize_grace
        with trio.move_on_after(grace, shield=True) as finalizing:
            status, reason = outcome(slot, exit_)
            await context.book.conclude(slot, status, reason)
        if finalizing.cancelled_caught:  # never silently: the store keeps it `running`
            log.error("run %s: its end was not stored within %g s", slot.info.instance_uid, grace)
        slot.ended.set()


def governor_environment() -> dict[str, str]:
    """Governors import components by name: give them the executor's import path.
    SPT_NOENV keeps setproctitle off their environment, which stays readable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["SPT_NOENV"] = "1"
    return env


def governor_argv(endpoint: str, options: ExecutorOptions, governor: Governor) -> list[str]:
    """A warm governor (no run yet) learns its run from the start request."""
    argv = [
        sys.executable,
        "-m",
        "palaestrio.governor",
        "--broker",
        endpoint,
        "--governor-id",
        governor.governor_id,
        "--heartbeat-interval",
        str(options.heartbeat_interval),
        "--heartbeat-liveness",
        str(options.heartbeat_liveness),
        "--log-level",
        options.governor_log_level,
    ]
    if governor.run_uid is not None:
        argv += ["--run-uid", governor.run_uid]
    return argv


def governor_spawner(
    launcher: Launcher,
    endpoint: str,
    options: ExecutorOptions,
    curve_server: CurveServer | None = None,
) -> Spawn:
    """How `GovernorPool` launches a governor: with `launcher`, for the broker at
    `endpoint`; with `curve_server`, a CURVE key pair of its own, revoked when it ends."""

    async def spawn(governor: Governor, task_status: trio.TaskStatus[Child]) -> ChildExit:
        keys = curve_server.admit() if curve_server is not None else None
        try:
            return await launcher.run(
                governor_argv(endpoint, options, governor),
                name=governor.run_uid or "",
                env=keys.environment() if keys is not None else None,
                on_output_line=governor.output,
                task_status=task_status,
            )
        finally:
            if keys is not None and curve_server is not None:
                curve_server.revoke(keys)

    return spawn


async def _run_governor(slot: RunSlot, context: RunContext) -> ChildExit:
    run_uid = slot.info.experiment_run.uid
    governor = await context.governors.take(run_uid)
    exit_, started = await _govern(slot, context, governor)
    if started or not governor.warm or not _died_before_its_run(slot):
        return exit_
    # It never learnt its run: nothing ran, nothing was stored. A fresh one runs it.
    log.warning(
        "run %s: a governor started ahead died before the run began (%s); starting another",
        slot.info.instance_uid,
        exit_.describe(),
    )
    slot.child, slot.info.reason = None, None
    slot.scope = trio.CancelScope()  # not cancelled (no cancel_reason), and used up
    governor = await context.governors.take(run_uid)
    return (await _govern(slot, context, governor))[0]


def _run_log(slot: RunSlot, context: RunContext) -> RunLog | None:
    if context.run_log_dir is None:
        return None
    path = context.run_log_dir / f"{slot.info.instance_uid}{LOG_SUFFIX}"
    return RunLog(path, context.options.run_log_max_bytes)


def _died_before_its_run(slot: RunSlot) -> bool:
    child = slot.child
    return (
        child is not None
        and child.exited.is_set()
        and slot.report is None
        and slot.cancel_reason is None
        and not slot.lost.is_set()
    )


async def _govern(slot: RunSlot, context: RunContext, governor: Governor) -> tuple[ChildExit, bool]:
    """Supervises `governor` running the run; its exit, and whether the run started."""
    started = False
    try:
        if governor.child is None:  # the launcher could not start it
            assert governor.error is not None
            raise governor.error
        governor.output.target = GovernorLines(
            slot.info.experiment_run.uid, _run_log(slot, context)
        )
        context.book.starting(slot, governor.governor_id)
        started = await _supervise_child(slot, context, governor.child, governor.governor_id)
    finally:
        # Shielded from outside cancellation until here: the governor got the
        # graceful way first; now the launcher's kill path (a no-op once it exited).
        governor.stop()
        with trio.CancelScope(shield=True):
            await governor.ended.wait()
    if governor.error is not None:
        raise governor.error
    exit_ = governor.exit or governor.child.exit
    assert exit_ is not None
    return exit_, started


async def _supervise_child(
    slot: RunSlot, context: RunContext, child: Child, governor_id: str
) -> bool:
    """Starts the governor and waits for its end; stops it gracefully when cancelled.
    Whether the governor accepted the run."""
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
    return started


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
