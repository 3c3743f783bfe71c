"""One worker of a phase: its own environment instances, muscles and objectives (the
brains are shared), stepping episode by episode and emitting records.

The step is the hot path: ten actuators and ten sensors must cost microseconds. Hence
precomputed lookup tables per actuator (owning environment, local id, value check),
sync/async decided once per method, and plain-data conversion only for values that are
not already plain.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..records import EpisodeEnded, EpisodeStarted, MuscleAction, Record, WorldState
from .agent import Memory, MemoryRow
from .environment import Environment, EnvironmentBaseline, EnvironmentState
from .errors import ComponentError, SensorActuatorMismatchError
from .information import ActuatorInformation, SensorInformation
from .spaces import ValueCheck, to_plain, value_check
from .termination import StepOutcome, TerminationCondition

if TYPE_CHECKING:
    from gymnasium import Space

    from .agent import Brain, Muscle, Objective
    from .controllers import SimulationController
    from .environment import EnvironmentStateTransformer

_PLAIN = frozenset({int, float, str, bool, type(None)})


class PhaseContext:
    """What every worker of a phase shares."""

    def __init__(
        self,
        phase: int,
        phase_name: str,
        emit: Callable[[Record], Any],
        controller: SimulationController,
        controller_name: str,
        episode_conditions: list[tuple[TerminationCondition, str]],
    ) -> None:
        self.phase = phase
        self.phase_name = phase_name
        self.emit = emit
        self.controller = controller
        self.controller_name = controller_name
        self.episode_conditions = episode_conditions

    def fault(
        self,
        component: str,
        class_name: str,
        error: BaseException | str,
        *,
        worker: int | None = None,
        episode: int | None = None,
        step: int | None = None,
        kind: type[ComponentError] = ComponentError,
    ) -> ComponentError:
        """A ComponentError for `component` (raise it `from` the original error)."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return kind(
            text,
            component=component,
            class_name=class_name,
            phase=self.phase,
            phase_name=self.phase_name,
            worker=worker,
            episode=episode,
            step=step,
        )


class SharedBrain:
    """An agent's brain and the latest update it gave out (for the other workers)."""

    def __init__(self, brain: Brain, class_name: str) -> None:
        self.brain = brain
        self.class_name = class_name
        self.thinking = brain.thinking
        self.memory = brain.memory
        self.latest: Any = None
        self.version = 0


class EnvironmentSlot:
    """One environment instance of one worker."""

    def __init__(
        self,
        environment: Environment,
        uid: str,
        class_name: str,
        transformer: EnvironmentStateTransformer | None,
    ) -> None:
        self.environment = environment
        self.uid = uid
        self.prefix = uid + "."
        self.class_name = class_name
        self.transformer = transformer
        self.update: Callable[[list[ActuatorInformation]], Any] = environment.update
        self.update_async = _is_async(environment.update)
        self.started = False


class ActuatorSlot:
    __slots__ = ("check", "environment", "local_uid", "space")

    def __init__(self, environment: int, local_uid: str, space: Any, check: ValueCheck) -> None:
        self.environment = environment
        self.local_uid = local_uid
        self.space = space
        self.check = check


class AgentSlot:
    """One agent in one worker."""

    def __init__(
        self,
        name: str,
        muscle: Muscle,
        muscle_class: str,
        objective: Objective,
        objective_class: str,
        brain: SharedBrain,
        sensor_ids: list[str],
        actuator_ids: list[str],
        muscle_id: str,
    ) -> None:
        self.name = name
        self.muscle = muscle
        self.muscle_class = muscle_class
        self.objective = objective
        self.objective_class = objective_class
        self.brain = brain
        self.sensor_ids = sensor_ids
        self.actuator_ids = actuator_ids
        self.muscle_id = muscle_id
        self.memory: Memory = muscle.memory
        self.propose = muscle.propose_actions
        self.internal_reward = objective.internal_reward
        self.actuators: list[ActuatorInformation] = []
        self.table: dict[str, ActuatorSlot] = {}
        self.brain_version = 0
        self.data_for_brain: Any = None
        self.acted = False
        # this step's transition
        self.sensors_now: list[SensorInformation] = []
        self.setpoints_now: list[ActuatorInformation] = []
        self.seen: dict[str, Any] = {}
        self.chosen: dict[str, Any] = {}


def _is_async(method: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(method)


async def _call(method: Callable[..., Any], *args: Any) -> Any:
    """Call a component method that may be sync or async."""
    result = method(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class Worker:
    """Runs the episodes of one worker; the phase loop interleaves workers by step."""

    def __init__(
        self,
        context: PhaseContext,
        index: int,
        environments: list[EnvironmentSlot],
        agents: list[AgentSlot],
    ) -> None:
        self.context = context
        self.index = index
        self.environments = environments
        self.agents = agents
        self.episodes_started = 0
        self.episodes_finished = 0
        self.steps_total = 0
        self.episode = 0
        self.step_index = 0
        self.running = False
        self.readings: dict[str, SensorInformation] = {}
        self.plain: dict[str, Any] = {}
        self._checks: dict[int, tuple[Space[Any] | None, ValueCheck]] = {}

    def _fault(self, component: str, class_name: str, error: BaseException | str) -> ComponentError:
        return self.context.fault(
            component,
            class_name,
            error,
            worker=self.index,
            episode=self.episode if self.running else None,
            step=self.step_index if self.running else None,
        )

    # episode boundaries ------------------------------------------------------------

    async def start_episode(self) -> None:
        """Start (first episode) or reset the environments, check the agents' ids, and
        emit EpisodeStarted."""
        self.episode = self.episodes_started
        if self.episodes_started:
            for agent in self.agents:
                try:
                    agent.muscle.reset()
                except Exception as error:
                    raise self._fault(
                        f"muscle of agent {agent.name!r}", agent.muscle_class, error
                    ) from error
        readings: dict[str, SensorInformation] = {}
        plain: dict[str, Any] = {}
        offered: dict[str, tuple[int, ActuatorInformation]] = {}
        for position, slot in enumerate(self.environments):
            baseline = await self._start(slot)
            for sensor in baseline.sensors_available:
                full = slot.prefix + str(sensor.uid)
                if full in readings:
                    raise self._fault(
                        f"environment {slot.uid!r}",
                        slot.class_name,
                        f"sensor id {full!r} is offered twice",
                    )
                readings[full] = SensorInformation(sensor.value, sensor.space, full)
                plain[full] = self._plain(slot, full, sensor.value)
            for actuator in baseline.actuators_available:
                full = slot.prefix + str(actuator.uid)
                if full in offered:
                    raise self._fault(
                        f"environment {slot.uid!r}",
                        slot.class_name,
                        f"actuator id {full!r} is offered twice",
                    )
                offered[full] = (position, actuator)
        for agent in self.agents:
            self._connect(agent, readings, offered)
        self.readings, self.plain = readings, plain
        self.step_index = 0
        self.episodes_started += 1
        self.running = True
        await self.context.emit(
            EpisodeStarted(self.context.phase, self.index, self.episode, time.time())
        )

    async def _start(self, slot: EnvironmentSlot) -> EnvironmentBaseline:
        environment = slot.environment
        label = f"environment {slot.uid!r}"
        try:
            if not slot.started:
                slot.started = True
                baseline = await _call(environment.start_environment)
            elif type(environment).reset is not Environment.reset:
                baseline = await _call(environment.reset)
            else:
                await _call(environment.shutdown)
                baseline = await _call(environment.start_environment)
        except Exception as error:
            raise self._fault(label, slot.class_name, error) from error
        if isinstance(baseline, tuple) and len(baseline) == 2:  # palaestrAI's older form
            baseline = EnvironmentBaseline(list(baseline[0]), list(baseline[1]))
        if not isinstance(baseline, EnvironmentBaseline):
            raise self._fault(
                label,
                slot.class_name,
                f"start returned {baseline!r}; expected an EnvironmentBaseline",
            )
        return baseline

    def _connect(
        self,
        agent: AgentSlot,
        readings: dict[str, SensorInformation],
        offered: dict[str, tuple[int, ActuatorInformation]],
    ) -> None:
        """Give the agent its actuators and lookup table; refuse ids nobody offers."""
        missing_sensors = [uid for uid in agent.sensor_ids if uid not in readings]
        missing_actuators = [uid for uid in agent.actuator_ids if uid not in offered]
        if missing_sensors or missing_actuators:
            lines = []
            if missing_sensors:
                lines.append(
                    f"sensors {missing_sensors} do not exist; sensors offered: {sorted(readings)}"
                )
            if missing_actuators:
                lines.append(
                    f"actuators {missing_actuators} do not exist; "
                    f"actuators offered: {sorted(offered)}"
                )
            raise self.context.fault(
                f"agent {agent.name!r}",
                agent.muscle_class,
                "; ".join(lines),
                worker=self.index,
                episode=self.episode,
                kind=SensorActuatorMismatchError,
            )
        agent.actuators = []
        agent.table = {}
        for full in agent.actuator_ids:
            position, actuator = offered[full]
            agent.actuators.append(ActuatorInformation(actuator.value, actuator.space, full))
            agent.table[full] = ActuatorSlot(
                position, str(actuator.uid), actuator.space, self._check(actuator.space)
            )

    def _check(self, space: Space[Any] | None) -> ValueCheck:
        # Keyed by identity; the space is kept in the entry so its id cannot be reused.
        cached = self._checks.get(id(space))
        if cached is None or cached[0] is not space:
            cached = (space, value_check(space))
            self._checks[id(space)] = cached
        return cached[1]

    async def end_episode(self, *, final_thinking: bool = True) -> None:
        """Let the brains think about each muscle's last transition, emit EpisodeEnded."""
        if final_thinking:
            for agent in self.agents:
                if agent.acted:
                    self._think(agent)
        for agent in self.agents:
            agent.acted = False
            agent.data_for_brain = None
        self.running = False
        self.episodes_finished += 1
        await self.context.emit(
            EpisodeEnded(self.context.phase, self.index, self.episode, self.step_index, time.time())
        )

    # the step ------------------------------------------------------------------------

    def _think(self, agent: AgentSlot) -> None:
        shared = agent.brain
        try:
            update = shared.thinking(agent.muscle_id, agent.data_for_brain)
        except Exception as error:
            raise self._fault(f"brain of agent {agent.name!r}", shared.class_name, error) from error
        if update is None:
            if agent.brain_version == shared.version:
                return
            update = shared.latest  # another worker's muscle got a newer update
        else:
            shared.latest = update
            shared.version += 1
        agent.brain_version = shared.version
        try:
            agent.muscle.update(update)
        except Exception as error:
            raise self._fault(
                f"muscle of agent {agent.name!r}", agent.muscle_class, error
            ) from error

    def _act(
        self,
        agent: AgentSlot,
        batches: list[list[ActuatorInformation]],
        applied: list[dict[str, Any]],
    ) -> None:
        """The agent thinks, proposes, and its setpoints are checked and routed."""
        self._think(agent)
        ids = agent.sensor_ids
        sensors = list(map(self.readings.__getitem__, ids))
        agent.seen = dict(zip(ids, map(self.plain.__getitem__, ids), strict=True))
        setpoints: list[ActuatorInformation]
        try:
            proposal: Any = agent.propose(sensors, agent.actuators)
            if type(proposal) is tuple:
                setpoints, agent.data_for_brain = proposal
            else:
                setpoints, agent.data_for_brain = proposal, None
        except Exception as error:
            raise self._fault(
                f"muscle of agent {agent.name!r}", agent.muscle_class, error
            ) from error
        table = agent.table
        chosen: dict[str, Any] = {}
        copies: list[ActuatorInformation] = []
        for setpoint in setpoints:
            try:
                uid = setpoint.uid
                slot = table[uid]
                value = setpoint.value
                checked = slot.check(value)
            except (AttributeError, KeyError, TypeError, ValueError) as error:
                raise self._setpoint_fault(agent, setpoint, error) from None
            position = slot.environment
            batches[position].append(ActuatorInformation(value, slot.space, slot.local_uid))
            copies.append(ActuatorInformation(value, slot.space, uid))
            chosen[uid] = checked
            applied[position][uid] = checked
        agent.sensors_now = sensors
        agent.setpoints_now = copies
        agent.chosen = chosen
        agent.acted = True

    def _setpoint_fault(self, agent: AgentSlot, setpoint: Any, error: Exception) -> ComponentError:
        if isinstance(error, ValueError):
            what = f"value for actuator {setpoint.uid!r} is outside its space: {error}"
        else:
            what = f"proposed {setpoint!r}, which is not one of its actuators {agent.actuator_ids}"
        return self._fault(f"muscle of agent {agent.name!r}", agent.muscle_class, what)

    async def step(self) -> bool:
        """One step: agents act, environments update, records are emitted. Returns
        whether the episode is over."""
        context = self.context
        step = self.step_index
        agents = self.agents
        try:
            acting = [agents[i] for i in context.controller.acting_agents(step, len(agents))]
        except Exception as error:
            raise self._fault("simulation controller", context.controller_name, error) from error
        environments = self.environments
        batches: list[list[ActuatorInformation]] = [[] for _ in environments]
        applied: list[dict[str, Any]] = [{} for _ in environments]
        for agent in acting:
            self._act(agent, batches, applied)

        walltime = time.time()
        readings, plain = self.readings, self.plain
        rewards: list[Any] = []
        reward_values: dict[str, Any] = {}
        world: list[WorldState] = []
        done = False
        for position, slot in enumerate(environments):
            try:
                if slot.update_async:
                    state = await slot.update(batches[position])
                else:
                    state = slot.update(batches[position])
                if slot.transformer is not None:
                    state = slot.transformer(state)
            except Exception as error:
                raise self._fault(f"environment {slot.uid!r}", slot.class_name, error) from error
            if type(state) is not EnvironmentState:
                state = self._legacy_state(slot, state)
            prefix = slot.prefix
            sensor_values: dict[str, Any] = {}
            for reading in state.sensor_information:
                local = reading.uid
                full = prefix + local if type(local) is str else prefix + str(local)
                value = reading.value
                if type(value) not in _PLAIN:
                    value = self._plain(slot, full, value)
                readings[full] = SensorInformation(reading.value, reading.space, full)
                plain[full] = value
                sensor_values[full] = value
            env_rewards: dict[str, Any] = {}
            for reward in state.rewards:
                value = reward.value
                full = prefix + str(reward.uid)
                env_rewards[full] = (
                    value if type(value) in _PLAIN else self._plain(slot, full, value)
                )
            rewards.extend(state.rewards)
            reward_values.update(env_rewards)
            env_done = bool(state.done)
            done = done or env_done
            simtime = (
                step + 1 if state.simtime is None else self._plain(slot, "simtime", state.simtime)
            )
            world.append(
                WorldState(
                    context.phase, self.index, self.episode, step, slot.uid, simtime,
                    sensor_values, applied[position], env_rewards, env_done, walltime,
                )
            )  # fmt: skip

        rows = [self._remember(agent, rewards, done) for agent in acting]
        if context.episode_conditions and not done:
            done = self._conditions_end_episode(step, world, rewards, acting, rows)
            if done:
                for row in rows:
                    row.done = True
        emit = context.emit
        for record in world:
            await emit(record)
        for agent, row in zip(acting, rows, strict=True):
            await emit(
                MuscleAction(
                    context.phase, self.index, self.episode, step, agent.name, agent.seen,
                    agent.chosen, reward_values, row.objective or 0.0, done, walltime,
                )
            )  # fmt: skip
        self.step_index = step + 1
        self.steps_total += 1
        return done

    def _remember(self, agent: AgentSlot, rewards: list[Any], done: bool) -> MemoryRow:
        row = MemoryRow(agent.muscle_id, agent.sensors_now, agent.setpoints_now, rewards, done)
        memory = agent.memory
        memory.append(row)
        try:
            objective = agent.internal_reward(memory)
            if type(objective) is not float:
                objective = _as_float(objective)
        except Exception as error:
            raise self._fault(
                f"objective of agent {agent.name!r}", agent.objective_class, error
            ) from error
        row.objective = objective
        agent.brain.memory.append(row)
        return row

    def _conditions_end_episode(
        self,
        step: int,
        world: list[WorldState],
        rewards: list[Any],
        acting: list[AgentSlot],
        rows: list[MemoryRow],
    ) -> bool:
        outcome = StepOutcome(
            self.index,
            self.episode,
            step,
            {state.environment: state.done for state in world},
            rewards,
            {agent.name: row.objective or 0.0 for agent, row in zip(acting, rows, strict=True)},
        )
        for condition, class_name in self.context.episode_conditions:
            try:
                if condition.check_episode(outcome):
                    return True
            except Exception as error:
                raise self._fault("termination condition", class_name, error) from error
        return False

    def _legacy_state(self, slot: EnvironmentSlot, state: Any) -> EnvironmentState:
        if isinstance(state, EnvironmentState):
            return state
        if isinstance(state, tuple) and len(state) == 3:  # palaestrAI's older form
            return EnvironmentState(list(state[0]), list(state[1]), bool(state[2]))
        raise self._fault(
            f"environment {slot.uid!r}",
            slot.class_name,
            f"update returned {state!r}; expected an EnvironmentState",
        )

    def _plain(self, slot: EnvironmentSlot, what: str, value: Any) -> Any:
        try:
            return to_plain(value)
        except TypeError as error:
            raise self._fault(
                f"environment {slot.uid!r}", slot.class_name, f"{what}: {error}"
            ) from None

    # the end -------------------------------------------------------------------------

    async def close(self, errors: list[BaseException]) -> None:
        """Tear down muscles and shut environments down; failures go to `errors`."""
        for agent in self.agents:
            try:
                agent.muscle.teardown()
            except Exception as error:
                failure = self._fault(f"muscle of agent {agent.name!r}", agent.muscle_class, error)
                failure.__cause__ = error
                errors.append(failure)
        for slot in self.environments:
            try:
                await _call(slot.environment.shutdown)
            except Exception as error:
                failure = self._fault(f"environment {slot.uid!r}", slot.class_name, error)
                failure.__cause__ = error
                errors.append(failure)


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        raise TypeError(f"internal_reward returned {value!r}; expected a number")
    if getattr(value, "size", None) == 1:  # numpy scalar or one-element array
        return float(value.reshape(-1)[0]) if hasattr(value, "reshape") else float(value)
    return float(value)
