"""The executor: one trio nursery supervising the broker, the store and the RunGovernors.

Structure (outer to inner; each level is shut down only after the one inside it)::

    services nursery   broker, store service, the "executor" MDP service, signal watcher
    └── runs nursery   registrar → scheduler → one supervising task per RunGovernor

Every way a run can stop goes through one mechanism, a cancel scope: `cancel(run_id)`
cancels the run's scope, `shutdown()` and the first SIGINT/SIGTERM cancel the runs
nursery, and a caller cancelling the scope around `open_executor` reaches the same
place. The supervising task then asks the governor to stop (MDP, graceful, up to
``cancel_grace`` seconds), and only then lets the launcher signal the process group
(SIGTERM, SIGKILL after ``term_grace``, then a SIGKILL sweep for grandchildren). A
second signal SIGKILLs every governor group at once. Nothing here polls: runs report
through MDP, processes through `trio.Process.wait`, and state changes through events.
"""

from __future__ import annotations

import enum
import getpass
import logging
import math
import os
import signal
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import msgspec
import setproctitle
import trio

from palaestrio import messages
from palaestrio.experiment.model import ExperimentRun
from palaestrio.mdp import broker
from palaestrio.mdp import protocol as mdp
from palaestrio.mdp.client import Client, open_client
from palaestrio.mdp.worker import serve_worker
from palaestrio.store import messages as store_messages
from palaestrio.store import service as store_service
from palaestrio.store.errors import StoreError
from palaestrio.store.sender import send_status
from palaestrio.supervise import Child, ChildExit, Launcher, LocalLauncher

log = logging.getLogger(__name__)
governor_log = logging.getLogger("palaestrio.governor")

DEFAULT_STORE_URI = "sqlite:///palaestrio.db"
FINALIZE_GRACE = 5.0
"""How long recording a run's final status may take during shutdown."""


class ExecutorState(enum.Enum):
    PRISTINE = 0
    INITIALIZED = 1
    RUNNING = 2
    SHUTDOWN = 3
    EXITED = 4
    SIGINT = 5
    SIGABRT = 6
    SIGTERM = 7


class ExecutorError(RuntimeError):
    """Base of the executor's errors."""


class UnknownRunError(ExecutorError, LookupError):
    def __init__(self, run_id: str, known: Sequence[str]) -> None:
        shown = ", ".join(known) or "none"
        super().__init__(f"no run {run_id!r} in this executor (runs: {shown})")
        self.run_id = run_id


class ExecutorInterrupted(ExecutorError):
    """A signal stopped the executor; every run it had was cancelled and stored."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass
class ExperimentRunRuntimeInformation:
    """What the executor knows about one scheduled run (one *instance* of a run)."""

    experiment_run: ExperimentRun
    instance_uid: str
    status: str = "scheduled"
    """scheduled, starting, running, then finished, error or cancelled."""
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

    @property
    def is_running(self) -> bool:
        return self.status in ("starting", "running")

    @property
    def is_done(self) -> bool:
        return self.status in ("finished", "error", "cancelled")


UpdateCallback = Callable[[ExperimentRunRuntimeInformation], None]


@dataclass(eq=False)
class _Slot:
    """The executor's private handle on one run instance."""

    info: ExperimentRunRuntimeInformation
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    cancel_reason: str | None = None
    child: Child | None = None
    report: messages.RunReport | None = None
    ended: trio.Event = field(default_factory=trio.Event)


class Executor:
    """Runs experiment runs, at most `parallel_runs` at once, in the order scheduled.

    Use `open_executor` in trio code, or `schedule(...)` then ``await execute()``.
    """

    def __init__(
        self,
        parallel_runs: int = 1,
        *,
        store_uri: str = DEFAULT_STORE_URI,
        broker_uri: str | None = None,
        handle_signals: bool = True,
        cancel_grace: float = 5.0,
        term_grace: float = 1.0,
        start_timeout: float = 60.0,
        heartbeat_interval: float = mdp.DEFAULT_HEARTBEAT_INTERVAL,
        heartbeat_liveness: int = mdp.DEFAULT_HEARTBEAT_LIVENESS,
        launcher: Launcher | None = None,
        on_update: UpdateCallback | None = None,
        governor_log_level: str = "INFO",
    ) -> None:
        if parallel_runs < 1:
            raise ValueError(f"parallel_runs must be at least 1, not {parallel_runs}")
        self.parallel_runs = parallel_runs
        self.store_uri = store_uri
        self.broker_uri = broker_uri
        self.handle_signals = handle_signals
        self.cancel_grace = cancel_grace
        self.start_timeout = start_timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_liveness = heartbeat_liveness
        self.term_grace = term_grace
        self.launcher: Launcher = launcher or LocalLauncher(
            term_grace=term_grace, env=_governor_environment()
        )
        self.on_update = on_update
        self.governor_log_level = governor_log_level
        self._state = ExecutorState.PRISTINE
        self._slots: list[_Slot] = []
        self._queue_in, self._queue_out = trio.open_memory_channel[_Slot](math.inf)
        self._runs_scope: trio.CancelScope | None = None
        self._service_scopes: list[trio.CancelScope] = []
        self._interrupted_by: int | None = None

    # -- public API (the seed's shape) ---------------------------------------------

    @property
    def state(self) -> ExecutorState:
        return self._state

    def schedule(self, experiment_run: ExperimentRun | Sequence[ExperimentRun]) -> None:
        """Queues one run or several; they start in this order."""
        if self._state.value >= ExecutorState.SHUTDOWN.value:
            raise ExecutorError(f"cannot schedule runs: the executor is {self._state.name}")
        runs = [experiment_run] if isinstance(experiment_run, ExperimentRun) else experiment_run
        for run in runs:
            slot = _Slot(ExperimentRunRuntimeInformation(run, uuid.uuid4().hex))
            self._slots.append(slot)
            self._queue_in.send_nowait(slot)

    def experiment_runs(self) -> list[ExperimentRunRuntimeInformation]:
        return [slot.info for slot in self._slots]

    async def cancel(self, experiment_run_id: str) -> None:
        """Cancels a run (by instance uid, or every instance of a run uid) and waits
        until it has stopped and its status is stored."""
        slots = [
            s
            for s in self._slots
            if experiment_run_id in (s.info.instance_uid, s.info.experiment_run.uid)
        ]
        if not slots:
            raise UnknownRunError(
                experiment_run_id, [s.info.experiment_run.uid for s in self._slots]
            )
        for slot in slots:
            if slot.cancel_reason is None:
                slot.cancel_reason = "cancelled by request"
            slot.scope.cancel()
        for slot in slots:
            await slot.ended.wait()

    def shutdown(self) -> None:
        """Stops scheduling and cancels every run (gracefully, then by the kill path)."""
        if self._state.value >= ExecutorState.SHUTDOWN.value:
            return
        self._state = ExecutorState.SHUTDOWN
        self._stop_all("executor shut down")

    async def execute(self) -> ExecutorState:
        """Runs everything scheduled (and whatever is scheduled meanwhile) to its end.

        Returns EXITED, or SIGINT/SIGTERM when a signal interrupted it.
        """
        try:
            async with self._lifecycle():
                pass
        except ExecutorInterrupted:
            pass
        return self._state

    # -- lifecycle ------------------------------------------------------------------

    @asynccontextmanager
    async def _lifecycle(self) -> AsyncIterator[Executor]:
        if self._state is not ExecutorState.PRISTINE:
            raise ExecutorError("an Executor runs only once")
        try:
            try:
                async with self._supervision() as executor:
                    yield executor
            except BaseExceptionGroup as group:
                raise _single_error(group) from None
        except KeyboardInterrupt:
            # A signal that came again while we were already going down is re-delivered
            # by trio's signal receiver as KeyboardInterrupt: it asked for what we did.
            if self._interrupted_by is None:
                raise
        if self._interrupted_by is not None:
            raise ExecutorInterrupted(self._interrupted_by)

    @asynccontextmanager
    async def _supervision(self) -> AsyncIterator[Executor]:
        self._state = ExecutorState.INITIALIZED
        title = setproctitle.getproctitle()
        setproctitle.setproctitle("palaestrio[executor]")
        try:
            async with trio.open_nursery() as services:
                try:
                    endpoint: str = await self._start_service(
                        services,
                        partial(
                            broker.serve,
                            self.broker_uri,
                            heartbeat_interval=self.heartbeat_interval,
                            heartbeat_liveness=self.heartbeat_liveness,
                        ),
                    )
                    # The store opens (an embedded SQLite file is created) before any
                    # run starts: a bad URI or unreachable database fails here, clearly.
                    await self._start_service(
                        services,
                        partial(
                            store_service.serve,
                            self.store_uri,
                            endpoint,
                            create=self.store_uri.startswith("sqlite"),
                            heartbeat_interval=self.heartbeat_interval,
                            heartbeat_liveness=self.heartbeat_liveness,
                        ),
                    )
                    async with open_client(endpoint) as client:
                        await self._start_service(
                            services,
                            partial(
                                serve_worker,
                                endpoint,
                                messages.EXECUTOR_SERVICE,
                                self._on_governor_event,
                                heartbeat_interval=self.heartbeat_interval,
                                heartbeat_liveness=self.heartbeat_liveness,
                            ),
                        )
                        if (
                            self.handle_signals
                            and threading.current_thread() is threading.main_thread()
                        ):
                            await self._start_service(services, self._watch_signals)
                        try:
                            async with trio.open_nursery() as runs:
                                self._runs_scope = runs.cancel_scope
                                runs.start_soon(self._register_and_schedule, client, endpoint, runs)
                                if self._state is ExecutorState.INITIALIZED:
                                    self._state = ExecutorState.RUNNING
                                yield self
                                self._queue_in.close()
                        finally:
                            with trio.move_on_after(FINALIZE_GRACE, shield=True):
                                await self._cancel_unstarted(client)
                finally:
                    # Runs are over: now the services may go (store last written above).
                    for scope in self._service_scopes:
                        scope.cancel()
        finally:
            setproctitle.setproctitle(title)
            if self._state in (ExecutorState.RUNNING, ExecutorState.SHUTDOWN):
                self._state = ExecutorState.EXITED

    async def _start_service(
        self, services: trio.Nursery, serve: Callable[..., Awaitable[None]]
    ) -> Any:
        """Starts a service that outside cancellation does not reach until the runs'
        own shutdown is over (they need broker and store for it); see `_bound_services`."""
        scope = trio.CancelScope(shield=True)
        self._service_scopes.append(scope)

        async def shielded(task_status: trio.TaskStatus[Any]) -> None:
            with scope:
                await serve(task_status=task_status)

        return await services.start(shielded)

    def _bound_services(self) -> None:
        """Shutdown has begun: the services' shield gets a deadline (never unbounded)."""
        budget = self.cancel_grace + self.term_grace + 2 * FINALIZE_GRACE
        deadline = trio.current_time() + budget
        for scope in self._service_scopes:
            scope.deadline = min(scope.deadline, deadline)

    def _stop_all(self, reason: str) -> None:
        self._queue_in.close()
        for slot in self._slots:
            if slot.cancel_reason is None:
                slot.cancel_reason = reason
        if self._runs_scope is not None:
            self._runs_scope.cancel()
        self._bound_services()

    async def _watch_signals(self, task_status: trio.TaskStatus[None]) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if self._interrupted_by is None:
                    name = signal.Signals(signum).name
                    log.warning("%s: cancelling every run (again to kill at once)", name)
                    self._interrupted_by = signum
                    self._state = ExecutorState[name]
                    self._stop_all(f"executor interrupted by {name}")
                else:
                    log.warning("second signal: killing every RunGovernor now")
                    for slot in self._slots:
                        if slot.child is not None:
                            slot.child.kill_now()

    # -- scheduling -----------------------------------------------------------------

    async def _register_and_schedule(
        self, client: Client, endpoint: str, runs: trio.Nursery
    ) -> None:
        """Stores each run as scheduled at once, and starts runs as slots free up."""
        ready_in, ready_out = trio.open_memory_channel[_Slot](math.inf)
        free_slots = trio.Semaphore(self.parallel_runs)  # FIFO: runs start in order

        async def register() -> None:
            async with ready_in:
                async for slot in self._queue_out:
                    await self._store(client, self._scheduled_event(slot.info))
                    ready_in.send_nowait(slot)

        async def start_runs() -> None:
            async for slot in ready_out:
                await free_slots.acquire()
                runs.start_soon(self._run_and_release, client, endpoint, slot, free_slots)

        async with trio.open_nursery() as pipeline:
            pipeline.start_soon(register)
            pipeline.start_soon(start_runs)

    async def _run_and_release(
        self, client: Client, endpoint: str, slot: _Slot, free_slots: trio.Semaphore
    ) -> None:
        try:
            await self._supervise(client, endpoint, slot)
        finally:
            free_slots.release()

    def _scheduled_event(self, info: ExperimentRunRuntimeInformation) -> store_messages.Scheduled:
        run = info.experiment_run
        document = None
        if run.source is not None:
            try:
                with open(run.source, encoding="utf-8") as file:
                    document = file.read()
            except OSError:
                document = None
        return store_messages.Scheduled(
            info.instance_uid,
            run_uid=run.uid,
            experiment_uid=run.experiment_uid or run.uid,
            time=_now().timestamp(),
            document=document,
            user=_user(),
        )

    async def _cancel_unstarted(self, client: Client) -> None:
        for slot in self._slots:
            if slot.info.status == "scheduled":
                # It may not be registered yet; a second `scheduled` changes nothing.
                await self._store(client, self._scheduled_event(slot.info))
                reason = slot.cancel_reason or "executor ended before the run started"
                await self._conclude(client, slot, "cancelled", reason)

    # -- one run --------------------------------------------------------------------

    async def _supervise(self, client: Client, endpoint: str, slot: _Slot) -> None:
        info = slot.info
        info.run_governor_id = uuid.uuid4().hex[:12]
        info.status, info.started_at = "starting", _now()
        self._notify(info)
        exit_: ChildExit | None = None
        try:
            if slot.scope.cancel_called:
                return
            exit_ = await self._run_governor(client, endpoint, slot)
        finally:
            with trio.move_on_after(FINALIZE_GRACE, shield=True):
                await self._finalize(client, slot, exit_)
            slot.ended.set()

    async def _run_governor(self, client: Client, endpoint: str, slot: _Slot) -> ChildExit:
        info = slot.info
        assert info.run_governor_id is not None
        argv = [
            sys.executable,
            "-m",
            "palaestrio.governor",
            "--broker",
            endpoint,
            "--governor-id",
            info.run_governor_id,
            "--instance",
            info.instance_uid,
            "--run-uid",
            info.experiment_run.uid,
            "--heartbeat-interval",
            str(self.heartbeat_interval),
            "--heartbeat-liveness",
            str(self.heartbeat_liveness),
            "--log-level",
            self.governor_log_level,
        ]
        # Shielded from outside cancellation: the governor gets the graceful way first,
        # then this scope is cancelled and the launcher's kill path runs.
        kill_scope = trio.CancelScope(shield=True)

        async def run_child(task_status: trio.TaskStatus[Child]) -> None:
            with kill_scope:
                await self.launcher.run(
                    argv,
                    on_output_line=partial(_forward_governor_line, info.experiment_run.uid),
                    task_status=task_status,
                )

        async with trio.open_nursery() as nursery:
            child: Child = await nursery.start(run_child)
            slot.child = child
            info.pid = child.pid
            started = False
            try:
                with slot.scope:
                    started = await self._start(client, slot, child)
                    if started:
                        await child.exited.wait()
            except trio.Cancelled:
                if slot.cancel_reason is None:
                    slot.cancel_reason = "the executor was cancelled"
                self._bound_services()
                raise
            finally:
                if started and not child.exited.is_set():
                    with trio.move_on_after(self.cancel_grace, shield=True):
                        await self._request_shutdown(client, slot, child)
                        await child.exited.wait()
                kill_scope.cancel()  # a no-op once the governor has exited
        assert child.exit is not None
        return child.exit

    async def _ask_governor(
        self, client: Client, slot: _Slot, child: Child, request: messages.GovernorRequest
    ) -> messages.GovernorResponse | None:
        """Sends `request` to the run's governor; None if the governor exits first (its
        request would otherwise wait in the broker for a worker that never comes)."""
        service = messages.governor_service(slot.info.run_governor_id or "")
        response: messages.GovernorResponse | None = None
        async with trio.open_nursery() as race:

            async def ask() -> None:
                nonlocal response
                reply = await client.request(service, messages.encode(request))
                try:
                    response = messages.governor_response_decoder.decode(reply[0])
                except (msgspec.DecodeError, IndexError) as problem:
                    slot.info.reason = f"malformed answer from the RunGovernor: {problem}"
                race.cancel_scope.cancel()

            async def watch_exit() -> None:
                await child.exited.wait()
                race.cancel_scope.cancel()

            race.start_soon(ask)
            race.start_soon(watch_exit)
        return response

    async def _start(self, client: Client, slot: _Slot, child: Child) -> bool:
        """Sends the start request; False when the governor died, refused or stayed mute."""
        info = slot.info
        request = messages.ExperimentRunStartRequest(info.instance_uid, info.experiment_run)
        response = None
        with trio.move_on_after(self.start_timeout):
            response = await self._ask_governor(client, slot, child, request)
        if isinstance(response, messages.ExperimentRunStartResponse) and response.successful:
            info.experiment_run_id = info.experiment_run.uid
            info.status = "running"
            self._notify(info)
            return True
        if isinstance(response, messages.ExperimentRunStartResponse):
            info.reason = f"the RunGovernor refused to start: {response.error}"
        elif not child.exited.is_set() and info.reason is None:
            info.reason = f"the RunGovernor did not answer within {self.start_timeout:g} s"
        return False

    async def _request_shutdown(self, client: Client, slot: _Slot, child: Child) -> None:
        reason = slot.cancel_reason or "cancelled"
        request = messages.ExperimentRunShutdownRequest(slot.info.instance_uid, reason)
        await self._ask_governor(client, slot, child, request)

    async def _finalize(self, client: Client, slot: _Slot, exit_: ChildExit | None) -> None:
        """Records how the run ended, unless the governor already stored it itself."""
        info, report = slot.info, slot.report
        if report is not None:
            info.status, info.reason = report.status, report.reason
            info.phases, info.episodes, info.steps = report.phases, report.episodes, report.steps
            if exit_ is not None and exit_.returncode != 0:
                log.warning(
                    "run %s: RunGovernor %s after reporting", info.instance_uid, exit_.describe()
                )
            info.ended_at = _now()
            self._notify(info)
            return
        if slot.cancel_reason is not None:
            status, reason = "cancelled", slot.cancel_reason
            if exit_ is not None and exit_.returncode < 0:
                reason += f" (RunGovernor {exit_.describe()})"
        else:
            status = "error"
            reason = info.reason or "the RunGovernor ended without reporting a final status"
            if exit_ is not None:
                reason += f"; RunGovernor {exit_.describe()}"
                if exit_.output_tail.strip():
                    reason += "\n" + exit_.output_tail.strip()
        await self._conclude(client, slot, status, reason)

    async def _conclude(self, client: Client, slot: _Slot, status: str, reason: str) -> None:
        info = slot.info
        now = _now()
        event: store_messages.StatusEvent
        if status == "cancelled":
            event = store_messages.Cancelled(info.instance_uid, now.timestamp(), reason)
        else:
            event = store_messages.Failed(info.instance_uid, now.timestamp(), reason)
        stored = await self._store(client, event)
        info.status = stored or status
        info.reason = reason
        info.ended_at = now
        self._notify(info)

    async def _store(self, client: Client, event: store_messages.StatusEvent) -> str | None:
        """Sends a status event to the store; returns the status the store now has.

        A store that refuses the event is logged, not raised: one run's bookkeeping
        problem must not take the other runs down."""
        try:
            return await send_status(client, event)
        except StoreError as error:
            log.error(
                "the store refused %s for run %s: %s",
                type(event).__name__,
                event.instance_uid,
                error,
            )
            return None

    # -- what governors tell us -----------------------------------------------------

    async def _on_governor_event(self, frames: list[bytes]) -> list[bytes]:
        try:
            event = messages.executor_event_decoder.decode(frames[0] if frames else b"")
        except msgspec.DecodeError as problem:
            log.warning("dropped a malformed governor event: %s", problem)
            return [messages.encode(messages.Ack())]
        slot = next((s for s in self._slots if s.info.instance_uid == event.instance_uid), None)
        if slot is None:
            log.warning("dropped an event for unknown run instance %s", event.instance_uid)
        elif isinstance(event, messages.RunProgress):
            slot.info.progress = event
            slot.info.steps = event.steps_total
            self._notify(slot.info)
        else:
            slot.report = event
        return [messages.encode(messages.Ack())]

    def _notify(self, info: ExperimentRunRuntimeInformation) -> None:
        if self.on_update is not None:
            self.on_update(info)


@asynccontextmanager
async def open_executor(
    parallel_runs: int = 1,
    store_uri: str = DEFAULT_STORE_URI,
    **options: object,
) -> AsyncIterator[Executor]:
    """An executor whose nursery owns broker, store and governors for the block.

    Schedule runs inside the block; leaving it waits until every scheduled run has
    ended. Cancelling the block (or an error in it) cancels every run, gracefully first.
    Options are `Executor`'s keyword arguments.
    """
    executor = Executor(parallel_runs, store_uri=store_uri, **options)  # type: ignore[arg-type]
    async with executor._lifecycle():
        yield executor


def _single_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception a caller should see instead of a group of them."""
    leaves: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    if not real:
        return leaves[0]
    if len(real) == 1:
        return real[0]
    error = ExecutorError("; ".join(f"{type(e).__name__}: {e}" for e in real))
    error.__cause__ = group
    return error


def _forward_governor_line(run_uid: str, line: str) -> None:
    level_name, _, rest = line.partition(" ")
    level = logging.getLevelName(level_name)
    if isinstance(level, int):
        governor_log.log(level, "[%s] %s", run_uid, rest)
    elif line.strip():
        governor_log.warning("[%s] %s", run_uid, line)


def _governor_environment() -> dict[str, str]:
    """Governors import components by name: give them the executor's import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _now() -> datetime:
    return datetime.now().astimezone()


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
