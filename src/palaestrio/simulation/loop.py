"""The step loop: a whole experiment run in the current process, emitting records.

Records come in this order: PhaseStarted; per worker and episode EpisodeStarted; per
step one WorldState per environment and one MuscleAction per acting agent;
EpisodeEnded; PhaseEnded. With `worker: N`, the N workers take turns step by step
(their records interleave), so the shared brains learn from all of them as they go.

Keys in the records' `sensors`, `setpoints` and `rewards` are `<environment uid>.<id>`.
The same run (file and seed) gives the same records, walltime aside.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..components.agent import Mode
from ..components.kinds import environment_arguments
from ..components.names import import_class
from ..components.palaestrai import is_adapter, legacy_brain, palaestrai_kind, wrap_legacy_brain
from ..components.palaestrai import wrap as wrap_palaestrai
from ..components.termination import PhaseProgress, TerminationCondition
from ..records import NullSink, PhaseEnded, PhaseStarted, RecordSink
from .brains import DATA_PATH, PhaseBrains
from .errors import ComponentError
from .slots import AgentSlot, EnvironmentSlot, PhaseContext, SharedBrain
from .worker import Worker

if TYPE_CHECKING:
    import trio

    from ..experiment.model import ExperimentRun, PhaseSpec
    from ..records import ComponentSpec

YIELD_INTERVAL = 0.001
"""Seconds of stepping between two trio checkpoints (see `run_in_process`)."""
CLEANUP_GRACE = 5.0
"""Seconds that shutting environments down may take after a failure or cancellation."""


class RunSummary(msgspec.Struct, frozen=True):
    """What `run_in_process` did: phases, episodes and steps run (totals, including
    ones cut short by a stop), and whether it stopped early."""

    phases: int
    episodes: int
    steps: int
    stopped: bool


async def run_in_process(
    run: ExperimentRun,
    sink: RecordSink,
    *,
    stop: trio.Event | None = None,
    yield_interval: float = YIELD_INTERVAL,
    data_path: Path = DATA_PATH,
) -> RunSummary:
    """Execute `run` here and now, emitting its records to `sink`.

    `stop` is checked after every step: once set, the running episodes and phase end
    (EpisodeEnded, PhaseEnded) and the summary says `stopped=True`.

    Between steps, the loop lets other trio tasks run (`trio.lowlevel.checkpoint()`)
    at least every `yield_interval` seconds, and after every step if it is 0. A
    checkpoint costs about 14 µs, as much as a third of a small step, so the default
    (1 ms) keeps that cost near 1 % while other tasks (heartbeats, a shutdown request)
    wait at most a millisecond plus one step. A sink that suspends also lets them run.

    Brain dumps go under `data_path` (see `palaestrio.simulation.brains`).

    A component that fails raises `ComponentError` (see there).
    """
    phases = episodes = steps = 0
    for index, phase in enumerate(run.phases):
        if stop is not None and stop.is_set():
            return RunSummary(phases, episodes, steps, stopped=True)
        phase_run = _PhaseRun(run, index, phase, sink, data_path)
        stopped = await phase_run.execute(stop, yield_interval)
        phases += 1
        episodes += sum(worker.episodes_started for worker in phase_run.workers)
        steps += sum(worker.steps_total for worker in phase_run.workers)
        if stopped:
            return RunSummary(phases, episodes, steps, stopped=True)
    return RunSummary(phases, episodes, steps, stopped=False)


def run_in_process_sync(run: ExperimentRun, sink: RecordSink | None = None) -> RunSummary:
    """`run_in_process` in a fresh `trio.run`, for debugging and scripts."""
    import trio

    return trio.run(run_in_process, run, sink if sink is not None else NullSink())


def derive_seed(run_seed: int, *parts: object) -> int:
    """A seed in [0, 2**32) for one component, independent of construction order."""
    text = "/".join(str(part) for part in (run_seed, *parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


class _PhaseRun:
    def __init__(
        self, run: ExperimentRun, index: int, phase: PhaseSpec, sink: RecordSink, data_path: Path
    ) -> None:
        self.run = run
        self.index = index
        self.phase = phase
        self.sink = sink
        self.brains = PhaseBrains(data_path, run.uid, index)
        self.workers: list[Worker] = []
        self.phase_conditions: list[tuple[TerminationCondition, str]] = []
        self.context: PhaseContext | None = None
        self._seeds: tuple[list[int], list[int]] | None = None

    def _fault(self, component: str, class_name: str, error: BaseException) -> ComponentError:
        failure = ComponentError(
            f"{type(error).__name__}: {error}",
            component=component,
            class_name=class_name,
            phase=self.index,
            phase_name=self.phase.name,
        )
        failure.__cause__ = error
        return failure

    def _build(
        self,
        spec: ComponentSpec,
        label: str,
        name: str = "",
        palaestrai_seed: Callable[[], int] | None = None,
        **given: Any,
    ) -> Any:
        """`spec`'s component; a palaestrAI one wrapped in its adapter (`name`: the
        environment's uid or the agent's name), an environment of palaestrAI's seeded
        with `palaestrai_seed()` as palaestrAI would."""
        try:
            cls = import_class(spec.name)
            kind = palaestrai_kind(cls)
            if "uid" in given:
                seed = given["seed"]
                if palaestrai_seed is not None and kind is not None:
                    seed = palaestrai_seed()
                given = environment_arguments(cls, given["uid"], seed)
                if kind is not None:  # palaestrAI always passes one
                    given["broker_uri"] = None
            if kind == "brain" and legacy_brain(cls, spec.params):
                return wrap_legacy_brain(cls, spec.params, name)
            component = cls(**given, **spec.params)
            return component if kind is None else wrap_palaestrai(component, kind, name)
        except Exception as error:
            raise self._fault(label, spec.name, error) from error

    async def execute(self, stop: trio.Event | None, yield_interval: float) -> bool:
        import trio  # here, not at the top: validating a file must not load trio

        phase = self.phase
        await self.sink.emit(
            PhaseStarted(
                self.index, phase.name, phase.mode, phase.workers, phase.episodes,
                phase.environments, phase.agents, phase.simulation, phase.config, time.time(),
            )
        )  # fmt: skip
        try:
            # Importing components can take seconds (palaestrAI, torch): in a thread, so
            # that trio tasks beside the loop (heartbeats) keep running meanwhile.
            await trio.to_thread.run_sync(self._import_components)
            self._assemble()
            for worker in self.workers:
                await worker.start_episode()
                if worker.index == 0:
                    self._set_up_brains(worker)
                self._set_up_muscles(worker)
            stopped = await self._loop(stop, yield_interval)
            self._store_brains()
            await self.brains.flush(self.sink.emit)
        except BaseException as failure:
            with trio.move_on_after(CLEANUP_GRACE, shield=True):
                errors = await self._close()
            for error in errors:
                failure.add_note(f"while cleaning up after it: {error}")
            raise
        errors = await self._close()
        if errors:
            raise errors[0]
        await self.sink.emit(PhaseEnded(self.index, time.time()))
        return stopped

    def _import_components(self) -> None:
        phase = self.phase
        specs: list[ComponentSpec | None] = [
            phase.simulation,
            *phase.conditions,
            self.run.run_condition,
        ]
        for environment in phase.environments:
            specs += [environment.environment, environment.reward, environment.state_transformer]
        for agent in phase.agents:
            specs += [agent.brain, agent.muscle, agent.objective]
        for spec in specs:
            if spec is not None:
                with contextlib.suppress(Exception):  # `_assemble` reports it, named
                    import_class(spec.name)

    def _assemble(self) -> None:
        run, phase, index = self.run, self.phase, self.index
        controller = self._build(phase.simulation, "simulation controller")
        conditions = [
            (self._build(spec, "termination condition"), spec.name)
            for spec in (*phase.conditions, run.run_condition)
        ]
        episode_conditions = [c for c in conditions if _overrides(c[0], "check_episode")]
        self.phase_conditions = [c for c in conditions if _overrides(c[0], "check_phase")]
        self.context = PhaseContext(
            index, phase.name, self.sink.emit, controller, phase.simulation.name, episode_conditions
        )
        brains = {}
        for number, agent in enumerate(phase.agents):
            brain = self._build(agent.brain, f"brain of agent {agent.name!r}", agent.name)
            brain.name, brain.mode = agent.name, Mode(phase.mode)
            if is_adapter(brain):
                brain.seed = self._palaestrai_seeds()[1][number]
            else:
                brain.seed = derive_seed(run.seed, index, "brain", agent.name)
            self.brains.attach(brain, agent.name, agent.load)
            brains[agent.name] = SharedBrain(brain, agent.brain.name)
        for worker in range(phase.workers):
            environments = []
            for number, spec in enumerate(phase.environments):
                seed = derive_seed(run.seed, index, "environment", spec.uid, worker)
                label = f"environment {spec.uid!r}"
                environment = self._build(
                    spec.environment, label, spec.uid,
                    partial(self._palaestrai_environment_seed, number, worker),
                    uid=spec.uid, seed=seed,
                )  # fmt: skip
                if spec.reward is not None:
                    environment.reward = self._build(spec.reward, f"reward of {label}", spec.uid)
                transformer = None
                if spec.state_transformer is not None:
                    transformer = self._build(
                        spec.state_transformer, f"state transformer of {label}", spec.uid
                    )
                environments.append(
                    EnvironmentSlot(environment, spec.uid, spec.environment.name, transformer)
                )
            agents = []
            for agent in phase.agents:
                muscle = self._build(agent.muscle, f"muscle of agent {agent.name!r}", agent.name)
                objective = self._build(
                    agent.objective, f"objective of agent {agent.name!r}", agent.name
                )
                muscle.name, muscle.mode = agent.name, Mode(phase.mode)
                if is_adapter(muscle):
                    muscle.dumper = self.brains.dumpers[agent.name]
                muscle.seed = derive_seed(run.seed, index, "muscle", agent.name, worker)
                agents.append(
                    AgentSlot(
                        agent.name, muscle, agent.muscle.name, objective, agent.objective.name,
                        brains[agent.name], list(agent.sensors), list(agent.actuators),
                        muscle_id=f"{agent.name}.{worker}",
                    )
                )  # fmt: skip
            self.workers.append(Worker(self.context, worker, environments, agents))

    def _palaestrai_seeds(self) -> tuple[list[int], list[int]]:
        """palaestrAI's seeds of this phase's environment entries and agents."""
        if self._seeds is None:
            from ..components.palaestrai.seeds import phase_seeds

            entries = [(len(p.environments), len(p.agents)) for p in self.run.phases]
            self._seeds = phase_seeds(self.run.seed, entries, self.index)
        return self._seeds

    def _palaestrai_environment_seed(self, number: int, worker: int) -> int:
        return self._palaestrai_seeds()[0][number] + worker

    def _set_up_brains(self, worker: Worker) -> None:
        for agent in worker.agents:
            brain = agent.brain.brain
            brain.sensors = [worker.readings[uid] for uid in agent.sensor_ids]
            brain.actuators = list(agent.actuators)
            try:
                self.brains.load(brain, agent.name)
                brain.setup()
            except Exception as error:
                raise self._fault(
                    f"brain of agent {agent.name!r}", agent.brain.class_name, error
                ) from error
            agent.brain.memory = brain.memory  # setup may have replaced it

    def _store_brains(self) -> None:
        """Each brain stores itself at the phase's end (palaestrAI's: once per muscle and
        once more when the brain shuts down)."""
        for agent in self.workers[0].agents:
            brain = agent.brain.brain
            try:
                for _ in range(self.phase.workers + 1 if is_adapter(brain) else 1):
                    brain.store()
            except Exception as error:
                raise self._fault(
                    f"brain of agent {agent.name!r}", agent.brain.class_name, error
                ) from error

    def _set_up_muscles(self, worker: Worker) -> None:
        for agent in worker.agents:
            muscle = agent.muscle
            muscle.sensors = [worker.readings[uid] for uid in agent.sensor_ids]
            muscle.actuators = agent.actuators
            try:
                muscle.setup()
            except Exception as error:
                raise self._fault(
                    f"muscle of agent {agent.name!r}", agent.muscle_class, error
                ) from error
            agent.memory = muscle.memory  # setup may have replaced it

    async def _loop(self, stop: trio.Event | None, yield_interval: float) -> bool:
        """Step the workers in turn until every one ran its episodes; True if stopped."""
        from trio.lowlevel import checkpoint

        clock = time.perf_counter
        episodes = self.phase.episodes
        active = list(self.workers)
        last_yield = clock()
        while active:
            for worker in tuple(active):
                if self.brains.pending:
                    await self.brains.flush(self.sink.emit)
                if await worker.step():
                    await worker.end_episode()
                    if self._phase_done():
                        for other in active:
                            if other.running:
                                await other.end_episode(final_thinking=False)
                        return False
                    if worker.episodes_finished >= episodes:
                        active.remove(worker)
                    else:
                        await worker.start_episode()
                if clock() - last_yield >= yield_interval:
                    await checkpoint()
                    last_yield = clock()
                if stop is not None and stop.is_set() and active:
                    for other in active:
                        if other.running:
                            await other.end_episode(final_thinking=False)
                    return True
        return False

    def _phase_done(self) -> bool:
        if not self.phase_conditions:
            return False
        progress = PhaseProgress(
            self.phase.episodes, [w.episodes_finished for w in self.workers], self.phase.mode
        )
        for condition, class_name in self.phase_conditions:
            try:
                if condition.check_phase(progress):
                    return True
            except Exception as error:
                raise self._fault("termination condition", class_name, error) from error
        return False

    async def _close(self) -> list[BaseException]:
        errors: list[BaseException] = []
        for worker in self.workers:
            await worker.close(errors)
        return errors


def _overrides(condition: TerminationCondition, method: str) -> bool:
    return getattr(type(condition), method) is not getattr(TerminationCondition, method)
