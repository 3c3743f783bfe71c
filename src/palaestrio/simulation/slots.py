"""The step loop's bookkeeping around each component: what a phase shares, one
environment instance, one agent in one worker, one actuator's routing and check."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..components.information import ActuatorInformation, SensorInformation
from .errors import ComponentError
from .spaces import ValueCheck

if TYPE_CHECKING:
    from ..components.agent import Brain, Memory, Muscle, Objective
    from ..components.controllers import SimulationController
    from ..components.environment import Environment, EnvironmentStateTransformer
    from ..components.termination import TerminationCondition
    from ..records import Record


class PhaseContext:
    """What every worker of a phase shares."""

    def __init__(
        self,
        phase: int,
        phase_name: str,
        emit: Callable[[Record], Awaitable[None]],
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
    """An agent's brain and the latest update it gave out: palaestrAI hands a muscle
    the latest update of its brain when the brain has none for it in particular."""

    def __init__(self, brain: Brain, class_name: str) -> None:
        self.brain = brain
        self.class_name = class_name
        self.thinking = brain.thinking
        self.memory = brain.memory
        self.latest: Any = None
        self.version = 0


class EnvironmentSlot:
    """One environment instance of one worker."""

    __slots__ = (
        "class_name",
        "environment",
        "full_ids",
        "prefix",
        "started",
        "transformer",
        "uid",
        "update",
        "update_async",
    )

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
        self.update_async = inspect.iscoroutinefunction(environment.update)
        self.started = False
        self.full_ids: dict[Any, str] = {}
        """Local sensor or reward uid -> '<environment uid>.<uid>'."""


class ActuatorSlot:
    """Where an agent's actuator goes (environment index, local uid) and its check.
    `low <= value < high` is the inline fast path for integer (Discrete) spaces."""

    __slots__ = ("check", "environment", "high", "local_uid", "low", "space")

    def __init__(self, environment: int, local_uid: str, space: Any, check: ValueCheck) -> None:
        self.environment = environment
        self.local_uid = local_uid
        self.space = space
        self.check = check
        self.low: int
        self.high: int
        self.low, self.high = getattr(check, "integer_range", (0, 0))


class AgentSlot:
    """One agent in one worker: its muscle and objective, its share of the brain, and
    this step's transition."""

    __slots__ = (
        "acted",
        "actuator_ids",
        "actuators",
        "brain",
        "brain_version",
        "chosen",
        "data_for_brain",
        "internal_reward",
        "memory",
        "muscle",
        "muscle_class",
        "muscle_id",
        "name",
        "objective",
        "objective_class",
        "propose",
        "seen",
        "sensor_ids",
        "sensors_now",
        "spaces",
        "table",
        "values_now",
    )

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
        self.spaces: dict[str, Any] = {}
        """Actuator uid -> space, for memory rows."""
        self.brain_version = 0
        self.data_for_brain: Any = None
        self.acted = False
        self.sensors_now: list[SensorInformation] = []
        self.values_now: dict[str, Any] = {}
        """This step's setpoints as the muscle set them (for the memory)."""
        self.seen: dict[str, Any] = {}
        self.chosen: dict[str, Any] = {}


async def call(method: Callable[..., Any], *args: Any) -> Any:
    """Call a component method that may be sync or async (not on the hot path)."""
    result = method(*args)
    if inspect.isawaitable(result):
        result = await result
    return result
