"""One worker of a phase: its own environment instances, muscles and objectives (the
brains are shared), stepping episode by episode and emitting records.

`Worker.step` is the hot path: a step of ten sensors and ten actuators must cost a
few dozen microseconds, so it avoids per-item function calls where it can (a table
per actuator, an inline range check for integer spaces), decides sync/async once per
environment, converts values to plain data only when they are not plain already, and
allocates only what must be fresh each step: the readings agents see (full uids), the
setpoints each environment receives (local uids), and the records. Objects an
environment returns (readings, rewards, their lists) are handed on without copying:
an environment must not change them afterwards.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..components.agent import MemoryRow
from ..components.environment import Environment, EnvironmentBaseline, EnvironmentState
from ..components.information import ActuatorInformation, SensorInformation
from ..components.termination import StepOutcome
from ..records import EpisodeEnded, EpisodeStarted, MuscleAction, WorldState
from .errors import ComponentError, SensorActuatorMismatchError
from .slots import ActuatorSlot, AgentSlot, EnvironmentSlot, PhaseContext, call
from .spaces import ValueCheck, to_plain, value_check

if TYPE_CHECKING:
    from gymnasium import Space

_PLAIN = frozenset({int, float, str, bool, type(None)})
_SETPOINT_ERRORS = (AttributeError, KeyError, TypeError, ValueError)


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
        self._starting = False
        self.readings: dict[str, SensorInformation] = {}
        """Latest reading per sensor id, as agents see it (full uid)."""
        self.plain: dict[str, Any] = {}
        """Latest reading per sensor id, as plain data for the records."""
        self._checks: dict[int, tuple[Space[Any] | None, ValueCheck]] = {}
        self._everyone = tuple(range(len(agents)))

    def _fault(self, component: str, class_name: str, error: BaseException | str) -> ComponentError:
        return self.context.fault(
            component,
            class_name,
            error,
            worker=self.index,
            episode=self.episode if self.running or self._starting else None,
            step=self.step_index if self.running else None,
        )

    # episode boundaries ------------------------------------------------------------

    async def start_episode(self) -> None:
        """Start (first episode) or reset the environments, check that they offer every
        id the agents name, and emit EpisodeStarted."""
        self.episode = self.episodes_started
        self._starting = True
        if self.episodes_started:
            for agent in self.agents:
                try:
                    agent.muscle.reset()
                except Exception as error:
                    label = f"muscle of agent {agent.name!r}"
                    raise self._fault(label, agent.muscle_class, error) from error
        readings: dict[str, SensorInformation] = {}
        plain: dict[str, Any] = {}
        offered: dict[str, tuple[int, ActuatorInformation]] = {}
        for position, slot in enumerate(self.environments):
            baseline = await self._start(slot)
            try:
                self._take_baseline(position, slot, baseline, readings, plain, offered)
            except ComponentError:
                raise
            except Exception as error:  # about what the environment returned
                raise self._fault(f"environment {slot.uid!r}", slot.class_name, error) from error
        for agent in self.agents:
            self._connect(agent, readings, offered)
        self.readings, self.plain = readings, plain
        self.step_index = 0
        self.episodes_started += 1
        self.running = True
        self._starting = False
        await self.context.emit(
            EpisodeStarted(self.context.phase, self.index, self.episode, time.time())
        )

    def _take_baseline(
        self,
        position: int,
        slot: EnvironmentSlot,
        baseline: EnvironmentBaseline,
        readings: dict[str, SensorInformation],
        plain: dict[str, Any],
        offered: dict[str, tuple[int, ActuatorInformation]],
    ) -> None:
        full_ids = slot.full_ids
        for sensor in baseline.sensors_available:
            full = full_ids.get(sensor.uid) or self._full_id(slot, sensor.uid)
            if full in readings:
                raise self._offered_twice(slot, "sensor", full)
            value = sensor.value
            readings[full] = SensorInformation(value, sensor.space, full)
            plain[full] = value if type(value) in _PLAIN else self._plain(slot, full, value)
        for actuator in baseline.actuators_available:
            full = full_ids.get(actuator.uid) or self._full_id(slot, actuator.uid)
            if full in offered:
                raise self._offered_twice(slot, "actuator", full)
            offered[full] = (position, actuator)

    async def _start(self, slot: EnvironmentSlot) -> EnvironmentBaseline:
        environment = slot.environment
        label = f"environment {slot.uid!r}"
        try:
            if not slot.started:
                slot.started = True
                baseline = await call(environment.start_environment)
            elif type(environment).reset is not Environment.reset:
                baseline = await call(environment.reset)
            else:
                await call(environment.shutdown)
                baseline = await call(environment.start_environment)
        except Exception as error:
            raise self._fault(label, slot.class_name, error) from error
        if isinstance(baseline, tuple) and len(baseline) == 2:  # palaestrAI's older form
            baseline = EnvironmentBaseline(list(baseline[0]), list(baseline[1]))
        if not isinstance(baseline, EnvironmentBaseline):
            message = f"start returned {baseline!r}; expected an EnvironmentBaseline"
            raise self._fault(label, slot.class_name, message)
        return baseline

    def _full_id(self, slot: EnvironmentSlot, local: Any) -> str:
        full = slot.full_ids.get(local)
        if full is None:
            if local is None:
                message = "a sensor, actuator or reward has no uid"
                raise self._fault(f"environment {slot.uid!r}", slot.class_name, message)
            full = slot.full_ids[local] = slot.prefix + str(local)
        return full

    def _offered_twice(self, slot: EnvironmentSlot, what: str, full: str) -> ComponentError:
        return self._fault(
            f"environment {slot.uid!r}", slot.class_name, f"{what} id {full!r} is offered twice"
        )

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
            problems = []
            if missing_sensors:
                problems.append(
                    f"sensors {missing_sensors} do not exist; "
                    f"the environments offer sensors {sorted(readings)}"
                )
            if missing_actuators:
                problems.append(
                    f"actuators {missing_actuators} do not exist; "
                    f"the environments offer actuators {sorted(offered)}"
                )
            raise self.context.fault(
                f"agent {agent.name!r}",
                agent.muscle_class,
                "; ".join(problems),
                worker=self.index,
                episode=self.episode,
                kind=SensorActuatorMismatchError,
            )
        if self._same_actuators(agent, offered):
            # As in the last episode: keep the objects and tables, restore start values.
            for actuator in agent.actuators:
                actuator.value = offered[actuator.uid][1].value
            return
        agent.actuators = []
        agent.table = {}
        agent.spaces = {}
        for full in agent.actuator_ids:
            position, actuator = offered[full]
            space = actuator.space
            agent.actuators.append(ActuatorInformation(actuator.value, space, full))
            agent.table[full] = ActuatorSlot(position, str(actuator.uid), space, self._check(space))
            agent.spaces[full] = space

    @staticmethod
    def _same_actuators(
        agent: AgentSlot, offered: dict[str, tuple[int, ActuatorInformation]]
    ) -> bool:
        table = agent.table
        if not table:
            return False
        for full in agent.actuator_ids:
            position, actuator = offered[full]
            slot = table[full]
            if slot.space is not actuator.space or slot.environment != position:
                return False
            if slot.local_uid != actuator.uid and slot.local_uid != str(actuator.uid):
                return False
        return True

    def _check(self, space: Space[Any] | None) -> ValueCheck:
        # Keyed by identity; the entry holds the space, so its id cannot be reused.
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
            label = f"brain of agent {agent.name!r}"
            raise self._fault(label, shared.class_name, error) from error
        if update is not None or agent.brain_version != shared.version:
            self._deliver(agent, update)

    def _deliver(self, agent: AgentSlot, update: Any) -> None:
        """Hand the muscle the brain's update, or the brain's latest one if it has none
        for this muscle but gave another worker's muscle a newer one (palaestrAI does)."""
        shared = agent.brain
        if update is None:
            update = shared.latest
        else:
            shared.latest = update
            shared.version += 1
        agent.brain_version = shared.version
        try:
            agent.muscle.update(update)
        except Exception as error:
            label = f"muscle of agent {agent.name!r}"
            raise self._fault(label, agent.muscle_class, error) from error

    def _act(self, agent: AgentSlot, batches: list[list[ActuatorInformation]]) -> None:
        """The agent thinks and proposes; its setpoints are checked and routed."""
        self._think(agent)
        ids = agent.sensor_ids
        sensors = list(map(self.readings.__getitem__, ids))
        plain = self.plain
        agent.seen = {uid: plain[uid] for uid in ids}
        try:
            proposal: Any = agent.propose(sensors, agent.actuators)
            if type(proposal) is tuple:
                setpoints, agent.data_for_brain = proposal
            else:
                setpoints, agent.data_for_brain = proposal, None
        except Exception as error:
            label = f"muscle of agent {agent.name!r}"
            raise self._fault(label, agent.muscle_class, error) from error
        if type(setpoints) is not list:
            setpoints = self._setpoint_list(agent, setpoints)
        table = agent.table
        chosen: dict[str, Any] = {}  # plain values, for the records
        given: dict[str, Any] | None = None  # values as set, where they are not plain
        for setpoint in setpoints:
            try:
                uid = setpoint.uid
                slot = table[uid]
                value = setpoint.value
                if type(value) is int and slot.low <= value < slot.high:
                    checked = value
                else:
                    checked = slot.check(value)
                    if checked is not value and given is None:
                        given = dict(chosen)
            except _SETPOINT_ERRORS as error:
                raise self._setpoint_fault(agent, setpoint, error) from None
            batches[slot.environment].append(ActuatorInformation(value, slot.space, slot.local_uid))
            chosen[uid] = checked
            if given is not None:
                given[uid] = value
        agent.sensors_now = sensors
        agent.values_now = chosen if given is None else given
        agent.chosen = chosen
        agent.acted = True

    def _setpoint_list(self, agent: AgentSlot, setpoints: Any) -> list[ActuatorInformation]:
        try:
            return list(setpoints)
        except TypeError:
            what = f"propose_actions returned {setpoints!r} as setpoints; expected a list"
            raise self._fault(f"muscle of agent {agent.name!r}", agent.muscle_class, what) from None

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
            indices = context.controller.acting_agents(step, len(agents))
            acting = agents if indices == self._everyone else [agents[i] for i in indices]
        except Exception as error:
            raise self._fault("simulation controller", context.controller_name, error) from error
        environments = self.environments
        batches: list[list[ActuatorInformation]] = [[] for _ in environments]
        for agent in acting:
            self._act(agent, batches)
        applied = self._applied(acting)

        walltime = time.time()
        readings, plain = self.readings, self.plain
        rewards: list[Any] = []
        reward_values: dict[str, Any] = {}
        world: list[WorldState] = []
        done = False
        for position, slot in enumerate(environments):
            try:
                state = slot.update(batches[position])
                if slot.update_async:
                    state = await state
                if slot.transformer is not None:
                    state = slot.transformer(state)
                if type(state) is not EnvironmentState:
                    state = self._legacy_state(slot, state)
                full_ids = slot.full_ids
                sensor_values: dict[str, Any] = {}
                for reading in state.sensor_information:
                    full = full_ids.get(reading.uid) or self._full_id(slot, reading.uid)
                    value = reading.value
                    readings[full] = SensorInformation(value, reading.space, full)
                    sensor_values[full] = (
                        value if type(value) in _PLAIN else self._plain(slot, full, value)
                    )
                plain.update(sensor_values)
                env_rewards: dict[str, Any] = {}
                for reward in state.rewards:
                    full = full_ids.get(reward.uid) or self._full_id(slot, reward.uid)
                    value = reward.value
                    env_rewards[full] = (
                        value if type(value) in _PLAIN else self._plain(slot, full, value)
                    )
                if rewards:
                    rewards = [*rewards, *state.rewards]
                    reward_values = {**reward_values, **env_rewards}
                else:
                    rewards, reward_values = state.rewards, env_rewards
                env_done = bool(state.done)
                simtime = step + 1 if state.simtime is None else to_plain(state.simtime)
            except ComponentError:
                raise
            except Exception as error:  # raised by the environment or about what it returned
                raise self._fault(f"environment {slot.uid!r}", slot.class_name, error) from error
            done = done or env_done
            world.append(
                WorldState(
                    context.phase, self.index, self.episode, step, slot.uid, simtime,
                    sensor_values, applied[position], env_rewards, env_done, walltime,
                )
            )  # fmt: skip

        rows = []
        for agent in acting:
            row = MemoryRow(
                agent.muscle_id, agent.sensors_now, agent.values_now, rewards, done, None,
                agent.spaces,
            )  # fmt: skip
            memory = agent.memory
            memory.append(row)
            try:
                objective: Any = agent.internal_reward(memory)
                if type(objective) is not float:
                    objective = _as_float(objective)
            except Exception as error:
                label = f"objective of agent {agent.name!r}"
                raise self._fault(label, agent.objective_class, error) from error
            row.objective = objective
            agent.brain.memory.append(row)
            rows.append(row)
        if context.episode_conditions and not done:
            done = self._conditions_end_episode(step, world, rewards, acting, rows)
            if done:
                for row in rows:
                    row.done = True

        emit = context.emit
        for record in world:
            await emit(record)
        index, episode, phase = self.index, self.episode, context.phase
        for position, agent in enumerate(acting):
            objective = rows[position].objective
            assert objective is not None
            await emit(
                MuscleAction(
                    phase, index, episode, step, agent.name, agent.seen, agent.chosen,
                    reward_values, objective, done, walltime,
                )
            )  # fmt: skip
        self.step_index = step + 1
        self.steps_total += 1
        return done

    def _applied(self, acting: list[AgentSlot]) -> list[dict[str, Any]]:
        """The setpoints of this step per environment (for WorldState.setpoints)."""
        if len(self.environments) == 1:
            if len(acting) == 1:
                return [acting[0].chosen]
            merged: dict[str, Any] = {}
            for agent in acting:
                merged.update(agent.chosen)
            return [merged]
        applied: list[dict[str, Any]] = [{} for _ in self.environments]
        for agent in acting:
            for uid, value in agent.chosen.items():
                applied[agent.table[uid].environment][uid] = value
        return applied

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
        message = f"update returned {state!r}; expected an EnvironmentState"
        raise self._fault(f"environment {slot.uid!r}", slot.class_name, message)

    def _plain(self, slot: EnvironmentSlot, what: str, value: Any) -> Any:
        try:
            return to_plain(value)
        except TypeError as error:
            label = f"environment {slot.uid!r}"
            raise self._fault(label, slot.class_name, f"{what}: {error}") from None

    # the end -------------------------------------------------------------------------

    async def close(self, errors: list[BaseException]) -> None:
        """Tear down muscles and shut environments down; failures go to `errors`."""
        for agent in self.agents:
            try:
                agent.muscle.teardown()
            except Exception as error:
                label = f"muscle of agent {agent.name!r}"
                failure = self._fault(label, agent.muscle_class, error)
                failure.__cause__ = error
                errors.append(failure)
        for slot in self.environments:
            try:
                await call(slot.environment.shutdown)
            except Exception as error:
                failure = self._fault(f"environment {slot.uid!r}", slot.class_name, error)
                failure.__cause__ = error
                errors.append(failure)


def _as_float(value: Any) -> float:
    if isinstance(value, bool | str) or value is None:
        raise TypeError(f"internal_reward returned {value!r}; expected a number")
    if getattr(value, "size", None) == 1 and hasattr(value, "reshape"):  # numpy
        return float(value.reshape(-1)[0])
    return float(value)
