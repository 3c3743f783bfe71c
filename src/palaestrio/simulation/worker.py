"""One worker of a phase: its own environment instances, muscles and objectives (the
brains are shared), stepping episode by episode and emitting records. This module has
the step; episode boundaries and the worker's state are in `episodes.py`.

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
from typing import Any

from ..components.agent import MemoryRow
from ..components.environment import EnvironmentState
from ..components.information import ActuatorInformation, SensorInformation
from ..components.termination import StepOutcome
from ..records import MuscleAction, WorldState
from .episodes import WorkerEpisodes
from .errors import ComponentError
from .slots import AgentSlot, EnvironmentSlot
from .spaces import PLAIN_SCALARS, to_plain

_SETPOINT_ERRORS = (AttributeError, KeyError, TypeError, ValueError)


class Worker(WorkerEpisodes):
    """Runs the episodes of one worker; the phase loop interleaves workers by step."""

    # the step ------------------------------------------------------------------------

    async def step(self) -> bool:
        """One step: agents act, environments update, records are emitted. Returns
        whether the episode is over. The documented hot path (see the module docstring):
        one method call per acting agent (`_act`) and per environment (`_observe`), a
        few per step; loops over sensors, actuators and rewards stay inline."""
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
        rewards: list[Any] = []
        reward_values: dict[str, Any] = {}
        world: list[WorldState] = []
        done = False
        endings: list[EnvironmentState] = []  # states that tell terminated from truncated
        for position, slot in enumerate(environments):
            try:
                state = slot.update(batches[position])
                if slot.update_async:
                    state = await state
            except ComponentError:
                raise
            except Exception as error:  # raised by the environment
                raise self._fault(f"environment {slot.uid!r}", slot.class_name, error) from error
            state, record = self._observe(slot, state, step, applied[position], walltime)
            if rewards:
                rewards = [*rewards, *state.rewards]
                reward_values = {**reward_values, **record.rewards}
            else:
                rewards, reward_values = state.rewards, record.rewards
            done = done or record.done
            world.append(record)
            if state.terminated is not None or state.truncated is not None:
                endings.append(state)

        rows = self._remember(acting, rewards, done, *_ending(endings))
        if context.episode_conditions and not done:
            done = self._conditions_end_episode(step, world, rewards, acting, rows)
            if done:
                for row in rows:
                    row.done = True
        emit = context.emit
        for record in world:
            await emit(record)
        for action in self._actions(step, acting, rows, reward_values, done, walltime):
            await emit(action)
        self.step_index = step + 1
        self.steps_total += 1
        return done

    def _observe(
        self,
        slot: EnvironmentSlot,
        state: Any,
        step: int,
        setpoints: dict[str, Any],
        walltime: float,
    ) -> tuple[EnvironmentState, WorldState]:
        """What an environment's update returned: its state (transformed) and the
        record of it; the latest readings are kept for the agents."""
        try:
            if slot.transformer is not None:
                state = slot.transformer(state)
            if type(state) is not EnvironmentState:
                state = self._legacy_state(slot, state)
            full_ids = slot.full_ids
            readings = self.readings
            sensor_values: dict[str, Any] = {}
            for reading in state.sensor_information:
                full = full_ids.get(reading.uid) or self._full_id(slot, reading.uid)
                value = reading.value
                readings[full] = SensorInformation(value, reading.space, full)
                sensor_values[full] = (
                    value if type(value) in PLAIN_SCALARS else self._plain(slot, full, value)
                )
            self.plain.update(sensor_values)
            env_rewards: dict[str, Any] = {}
            for reward in state.rewards:
                full = full_ids.get(reward.uid) or self._full_id(slot, reward.uid)
                value = reward.value
                env_rewards[full] = (
                    value if type(value) in PLAIN_SCALARS else self._plain(slot, full, value)
                )
            env_done = bool(state.done)
            simtime = step + 1 if state.simtime is None else to_plain(state.simtime)
        except ComponentError:
            raise
        except Exception as error:  # raised by the transformer or about what was returned
            raise self._fault(f"environment {slot.uid!r}", slot.class_name, error) from error
        record = WorldState(
            self.context.phase, self.index, self.episode, step, slot.uid, simtime,
            sensor_values, setpoints, env_rewards, env_done, walltime,
        )  # fmt: skip
        return state, record

    def _remember(
        self,
        acting: list[AgentSlot],
        rewards: list[Any],
        done: bool,
        terminated: bool | None,
        truncated: bool | None,
    ) -> list[MemoryRow]:
        """Each acting agent's transition goes into its muscle's memory, is rated by its
        objective, and goes into its brain's memory."""
        rows = []
        for agent in acting:
            row = MemoryRow(
                agent.muscle_id, agent.sensors_now, agent.values_now, rewards, done, None,
                agent.spaces, terminated, truncated,
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
        return rows

    def _actions(
        self,
        step: int,
        acting: list[AgentSlot],
        rows: list[MemoryRow],
        reward_values: dict[str, Any],
        done: bool,
        walltime: float,
    ) -> list[MuscleAction]:
        index, episode, phase = self.index, self.episode, self.context.phase
        actions = []
        for agent, row in zip(acting, rows, strict=True):
            objective = row.objective
            assert objective is not None
            actions.append(
                MuscleAction(
                    phase, index, episode, step, agent.name, agent.seen, agent.chosen,
                    reward_values, objective, done, walltime, row.terminated, row.truncated,
                )
            )  # fmt: skip
        return actions

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


def _ending(states: list[EnvironmentState]) -> tuple[bool | None, bool | None]:
    """(terminated, truncated) of a step, aggregated over its environments as palaestrAI
    does: any terminated wins, then any truncated; None if no environment tells."""
    if not states:
        return None, None
    if any(state.terminated is True for state in states):
        return True, False
    if any(state.truncated is True for state in states):
        return False, True
    return False, False


def _as_float(value: Any) -> float:
    if isinstance(value, bool | str) or value is None:
        raise TypeError(f"internal_reward returned {value!r}; expected a number")
    if getattr(value, "size", None) == 1 and hasattr(value, "reshape"):  # numpy
        return float(value.reshape(-1)[0])
    return float(value)
