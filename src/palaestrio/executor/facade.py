"""The executor's public face: `Executor` (the seed's shape) and `open_executor`.

Structure, outer to inner (each level shuts down only after the one inside it)::

    services (one bounded shield)   broker, store, "executor" MDP service, signals
    └── runs nursery                scheduler → one `supervisor.supervise` per run

Every way a run can stop is a cancel scope: `cancel(run_id)` cancels the run's scope,
`shutdown()` and the first SIGINT/SIGTERM/SIGHUP cancel the runs nursery, and a caller
cancelling the scope around `open_executor` reaches the same place. A second signal
SIGKILLs every governor's process tree at once.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial

import msgspec
import setproctitle
import trio

from palaestrio import messages
from palaestrio.curve import CurveServer, is_loopback, is_tcp, routable_bind
from palaestrio.errors import collapsed_groups
from palaestrio.executor.errors import ExecutorError, ExecutorInterrupted, UnknownRunError
from palaestrio.executor.governor_output import GovernorLines
from palaestrio.executor.governors import GovernorPool
from palaestrio.executor.launch import Launcher, LocalLauncher
from palaestrio.executor.options import ExecutorOptions
from palaestrio.executor.runs import ExecutorState, ExperimentRunRuntimeInformation, RunSlot
from palaestrio.executor.scheduler import Scheduler
from palaestrio.executor.services import Services, open_services
from palaestrio.executor.signals import can_watch_signals, watch_signals
from palaestrio.executor.statuses import StatusBook, UpdateCallback
from palaestrio.executor.supervisor import (
    RunContext,
    governor_environment,
    governor_spawner,
    supervise,
)
from palaestrio.experiment.model import ExperimentRun
from palaestrio.store.messages import RunSummary
from palaestrio.store.run_logs import run_log_dir

log = logging.getLogger("palaestrio.executor")

DEFAULT_STORE_URI = "sqlite:///palaestrio.db"


class Executor:
    """Runs experiment runs, at most `parallel_runs` at once, in the order scheduled.

    Use `open_executor` in trio code, or `schedule(...)` then ``await execute()``.
    Timing keywords (``cancel_grace``, ``term_grace``, ``start_timeout``, heartbeats,
    ``governor_log_level``) override the fields of `options`.

    ``curve``: CURVE on the broker (default: on for TCP that is not loopback); with
    it off, plain TCP on a non-loopback interface needs ``insecure=True``. A governor
    whose heartbeats stop is `error` with reason ``governor lost``.
    """

    def __init__(
        self,
        parallel_runs: int = 1,
        *,
        store_uri: str = DEFAULT_STORE_URI,
        broker_uri: str | None = None,
        handle_signals: bool = True,
        launcher: Launcher | None = None,
        on_update: UpdateCallback | None = None,
        options: ExecutorOptions | None = None,
        curve: bool | None = None,
        insecure: bool = False,
        **timing: float | int | str,
    ) -> None:
        if parallel_runs < 1:
            raise ValueError(f"parallel_runs must be at least 1, not {parallel_runs}")
        self.parallel_runs = parallel_runs
        self.store_uri = store_uri
        self.options = _with_timing(options or ExecutorOptions(), timing)
        self.launcher: Launcher = launcher or LocalLauncher(
            term_grace=self.options.term_grace, env=governor_environment()
        )
        if broker_uri is None and getattr(self.launcher, "remote", False):
            broker_uri = routable_bind()  # governors on other machines must reach it
        self.broker_uri = broker_uri
        # CURVE by default where other machines could reach the broker (tcp, not
        # loopback); ipc is guarded by file permissions.
        if curve is None:
            curve = broker_uri is not None and is_tcp(broker_uri) and not is_loopback(broker_uri)
        self.curve_server = CurveServer.generate() if curve else None
        self.insecure = insecure
        self.handle_signals = handle_signals
        self.on_update = on_update
        self.executor_id = uuid.uuid4().hex
        self._state = ExecutorState.PRISTINE
        self._slots: list[RunSlot] = []
        self._scheduler = Scheduler(parallel_runs)
        self._runs_scope: trio.CancelScope | None = None
        self._services: Services | None = None
        self._book: StatusBook | None = None
        self._interrupted_by: int | None = None
        self._store_failure: str | None = None
        self._stored_runs: list[RunSummary] | None = None

    # -- public API (the seed's shape) ---------------------------------------------

    @property
    def state(self) -> ExecutorState:
        return self._state

    def schedule(self, experiment_run: ExperimentRun | Sequence[ExperimentRun]) -> None:
        """Queues one run or several; they start in this order.

        Raises `ExecutorError`, before adding anything, once the executor has ended or
        is shutting down."""
        runs = [experiment_run] if isinstance(experiment_run, ExperimentRun) else experiment_run
        if self._scheduler.closed_because is not None:
            raise ExecutorError(f"cannot schedule runs: {self._scheduler.closed_because}")
        for run in runs:
            slot = RunSlot(ExperimentRunRuntimeInformation(run, uuid.uuid4().hex))
            self._scheduler.add(slot)
            self._slots.append(slot)

    def experiment_runs(self) -> list[ExperimentRunRuntimeInformation]:
        """Every run instance, retries included (`final_attempts` picks each run's last)."""
        return [slot.info for slot in self._slots]

    async def cancel(self, experiment_run_id: str) -> None:
        """Cancels a run (by instance uid, or every instance of a run uid) and waits
        until it has stopped and its status is stored."""
        slots = [slot for slot in self._slots if slot.matches(experiment_run_id)]
        if not slots:
            known = [slot.info.experiment_run.uid for slot in self._slots]
            raise UnknownRunError(experiment_run_id, known)
        for slot in slots:
            slot.cancel("cancelled by request")
        for slot in slots:
            await slot.ended.wait()

    def shutdown(self) -> None:
        """Stops scheduling and cancels every run (gracefully, then by the kill path)."""
        if self._state is ExecutorState.PRISTINE:
            self._scheduler.close("the executor was shut down")
        elif self._state in (ExecutorState.INITIALIZED, ExecutorState.RUNNING):
            self._state = ExecutorState.SHUTDOWN
            self._stop_all("executor shut down")

    async def execute(self) -> ExecutorState:
        """Runs everything scheduled (and whatever is scheduled meanwhile) to its end.

        Returns EXITED, or SIGINT/SIGTERM/SIGHUP when a signal interrupted it.
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
        self._state = ExecutorState.INITIALIZED
        title = setproctitle.getproctitle()
        setproctitle.setproctitle("palaestrio[executor]")
        try:
            with collapsed_groups():
                async with self._supervision() as executor:
                    yield executor
        except KeyboardInterrupt:
            # A signal that came again while we were already going down is re-delivered
            # by trio's signal receiver as KeyboardInterrupt: it asked for what we did.
            if self._interrupted_by is None:
                raise
        finally:
            setproctitle.setproctitle(title)
            self._scheduler.close("the executor has ended")
            if self._interrupted_by is None:
                self._state = ExecutorState.EXITED
        if self._interrupted_by is not None:
            raise ExecutorInterrupted(self._interrupted_by)

    @asynccontextmanager
    async def _supervision(self) -> AsyncIterator[Executor]:
        # Governors (in their pool's nursery, out here) start as soon as the broker is
        # bound: their imports overlap the store's opening.
        async with trio.open_nursery() as outer:
            governors: GovernorPool | None = None

            async def start_governors(endpoint: str) -> None:
                nonlocal governors
                warm = getattr(self.launcher, "warm_start", False)
                governors = GovernorPool(
                    governor_spawner(self.launcher, endpoint, self.options, self.curve_server),
                    spares=self.options.warm_governors if warm else 0,
                    waiting=self._scheduler.waiting,
                    on_line=GovernorLines("governor started ahead"),
                )
                await outer.start(governors.serve)

            try:
                async with open_services(
                    store_uri=self.store_uri,
                    broker_uri=self.broker_uri,
                    executor_id=self.executor_id,
                    options=self.options,
                    on_governor_event=self._on_governor_event,
                    on_store_failure=self._on_store_failure,
                    store_env=governor_environment(),
                    curve_server=self.curve_server,
                    insecure=self.insecure,
                    on_worker_expired=self._on_worker_expired,
                    on_broker_ready=start_governors,
                ) as services:
                    assert governors is not None
                    async with self._runs(services, governors):
                        yield self
            finally:
                if governors is not None:
                    governors.close()

    @asynccontextmanager
    async def _runs(self, services: Services, governors: GovernorPool) -> AsyncIterator[None]:
        self._services = services
        book = self._book = StatusBook(services.client, self.on_update)
        book.store_failure = self._store_failure
        if self.handle_signals and can_watch_signals():
            await services.start(partial(watch_signals, self._on_signal, self._kill_all))
        context = RunContext(
            services.client,
            book,
            self.options,
            governors,
            on_cancelled=self._bound_services,
            run_log_dir=run_log_dir(self.store_uri, self.options.run_log_dir),
        )
        try:
            async with trio.open_nursery() as runs:
                self._runs_scope = runs.cancel_scope
                if self._scheduler.closed_because is not None:
                    runs.cancel_scope.cancel()  # shut down while the services started
                runs.start_soon(self._schedule, book, context)
                if self._state is ExecutorState.INITIALIZED:
                    self._state = ExecutorState.RUNNING
                yield
                await self._scheduler.close_when_idle()
        finally:
            self._scheduler.close("the executor has ended")
            with trio.move_on_after(self.options.finalize_grace, shield=True):
                await self._scheduler.conclude_unstarted(book, self._slots)
            with trio.move_on_after(self.options.finalize_grace, shield=True):
                uids = [slot.info.instance_uid for slot in self._slots]
                self._stored_runs = await book.stored_runs(uids)

    async def _schedule(self, book: StatusBook, context: RunContext) -> None:
        try:
            await self._scheduler.run(book, partial(supervise, context=context), self._retry)
        finally:
            context.governors.close()  # every run has its governor, or never will

    def _retry(self, slot: RunSlot) -> tuple[RunSlot, float] | None:
        if self._state is not ExecutorState.RUNNING:
            return None  # stopping: never a retry
        retry = slot.retry(self.options)
        if retry is not None:
            self._slots.append(retry[0])
            if self._book is not None:
                self._book.notify(retry[0].info)
        return retry

    @property
    def stored_runs(self) -> list[RunSummary] | None:
        """Once the executor has ended: its run instances as the store has them (the
        store read by its own process, so this one needs no database driver); None if
        the store could not say."""
        return self._stored_runs

    @property
    def store_failure(self) -> str | None:
        """Why the store gave up, if it did: what was sent to it after that is lost,
        and every run that ended since is `error` (in memory: the store cannot say)."""
        return self._store_failure

    def _on_store_failure(self, reason: str) -> None:
        self._store_failure = reason
        log.error("the store failed, the runs are stopped: %s", reason)
        if self._book is not None:
            self._book.store_failure = reason
        if self._state in (ExecutorState.INITIALIZED, ExecutorState.RUNNING):
            self._state = ExecutorState.SHUTDOWN
        self._stop_all(f"the store failed: {reason}")

    def _bound_services(self) -> None:
        if self._services is not None:
            self._services.shield.bound(self.options.shutdown_budget)
            self._services.store.hurry()

    def _stop_all(self, reason: str) -> None:
        self._scheduler.close(f"the executor is stopping ({reason})")
        for slot in self._slots:
            if slot.cancel_reason is None:
                slot.cancel_reason = reason
        if self._runs_scope is not None:
            self._runs_scope.cancel()
        self._bound_services()

    def _on_signal(self, signum: signal.Signals) -> None:
        self._interrupted_by = signum
        self._state = ExecutorState[signum.name]
        self._stop_all(f"executor interrupted by {signum.name}")

    def _kill_all(self) -> None:
        for slot in self._slots:
            if slot.child is not None:
                slot.child.kill_now()

    # -- what governors tell us -----------------------------------------------------

    def _on_worker_expired(self, service: bytes) -> None:
        # Any peer can register a worker, under any name (not UTF-8 even): only ours count.
        prefix = messages.governor_service("").encode()
        if not service.startswith(prefix):
            return
        governor_id = service.removeprefix(prefix).decode(errors="replace")
        for slot in self._slots:
            child = slot.child
            if slot.info.run_governor_id == governor_id and child and not child.exited.is_set():
                log.warning("run %s: its RunGovernor went silent", slot.info.instance_uid)
                slot.lost.set()

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
            if self._book is not None:
                self._book.progress(slot, event)
        else:
            slot.report = event
        return [messages.encode(messages.Ack())]


def _with_timing(options: ExecutorOptions, timing: dict[str, float | int | str]) -> ExecutorOptions:
    fields = {field.name for field in dataclasses.fields(ExecutorOptions)}
    unknown = sorted(set(timing) - fields)
    if unknown:
        raise TypeError(
            f"unknown executor option(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(options, **timing)  # type: ignore[arg-type]


@asynccontextmanager
async def open_executor(
    parallel_runs: int = 1,
    store_uri: str = DEFAULT_STORE_URI,
    **options: object,
) -> AsyncIterator[Executor]:
    """An executor whose nursery owns broker, store and governors for the block.

    Schedule runs inside the block; leaving it waits until every scheduled run has
    ended (runs scheduled meanwhile, from other tasks, included). Cancelling the block
    (or an error in it) cancels every run, gracefully first. Options are `Executor`'s
    keyword arguments.
    """
    executor = Executor(parallel_runs, store_uri=store_uri, **options)  # type: ignore[arg-type]
    async with executor._lifecycle():
        yield executor
