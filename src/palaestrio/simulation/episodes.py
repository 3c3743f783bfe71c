"""A worker of a phase between its steps: its state, starting and resetting its
environments, wiring each agent to the actuators they offer, ending episodes (the
brains' last thinking) and shutting down. `Worker` (worker.py) adds the step itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..components.environment import Environment, EnvironmentBaseline
from ..components.information import ActuatorInformation, SensorInformation
from ..records import EpisodeEnded, EpisodeStarted
from .errors import ComponentError, SensorActuatorMismatchError
from .slots import ActuatorSlot, AgentSlot, EnvironmentSlot, PhaseContext, call
from .spaces import PLAIN_SCALARS, ValueCheck, to_plain, value_check

if TYPE_CHECKING:
    from gymnasium import Space


class WorkerEpisodes:
    """A worker's state and its episode boundaries; `Worker` adds the step."""

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
            plain[full] = value if type(value) in PLAIN_SCALARS else self._plain(slot, full, value)
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
                    if agent.muscle.propose_at_episode_end:
                        self._propose_on_final_readings(agent)
        for agent in self.agents:
            agent.acted = False
            agent.data_for_brain = None
        self.running = False
        self.episodes_finished += 1
        await self.context.emit(
            EpisodeEnded(self.context.phase, self.index, self.episode, self.step_index, time.time())
        )

    def _propose_on_final_readings(self, agent: AgentSlot) -> None:
        sensors = [self.readings[uid] for uid in agent.sensor_ids]
        try:
            agent.propose(sensors, agent.actuators)
        except Exception as error:
            label = f"muscle of agent {agent.name!r}"
            raise self._fault(label, agent.muscle_class, error) from error

    # the brain's side (at every step, and once more when an episode ends) ----------

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
