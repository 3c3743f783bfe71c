"""The one exception a failing component turns into."""

from __future__ import annotations

from ..errors import PalaestrioError


class ComponentError(PalaestrioError, RuntimeError):
    """A component (environment, brain, muscle, objective, ...) failed during a run.

    The message names the component, its class, and where the run was (phase, worker,
    episode, step); the original exception is `__cause__`, and its text is part of the
    message.
    """

    def __init__(
        self,
        message: str,
        *,
        component: str,
        class_name: str,
        phase: int,
        phase_name: str,
        worker: int | None = None,
        episode: int | None = None,
        step: int | None = None,
    ) -> None:
        where = [f"phase {phase} ({phase_name!r})"]
        if worker is not None:
            where.append(f"worker {worker}")
        if episode is not None:
            where.append(f"episode {episode}")
        if step is not None:
            where.append(f"step {step}")
        super().__init__(f"{component} ({class_name}), {', '.join(where)}: {message}")
        self.component = component
        self.class_name = class_name
        self.phase = phase
        self.phase_name = phase_name
        self.worker = worker
        self.episode = episode
        self.step = step


class SensorActuatorMismatchError(ComponentError):
    """An agent names sensor or actuator ids that its environments do not offer
    (found when the environments start, before the first step)."""
