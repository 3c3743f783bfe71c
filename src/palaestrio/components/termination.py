"""Termination conditions: when an episode or a phase ends.

Fixed rules first: an episode ends after a step in which any environment reports
`done`, and a phase ends when every worker has run `episodes` episodes. Conditions can
end either earlier. Every condition of a phase (`simulation.conditions`) and of the run
(`run_config.condition`) is asked both questions:

- `check_episode(outcome)` after every step of a worker: True ends that episode.
- `check_phase(progress)` after every episode: True ends the phase (running episodes of
  other workers end too).

palaestrAI's three built-ins state the fixed rules explicitly, so they never end
anything early here; they exist so that palaestrAI files run unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .information import RewardInformation


class StepOutcome:
    """What a worker's step produced, for `check_episode`."""

    __slots__ = ("dones", "episode", "objectives", "rewards", "step", "worker")

    def __init__(
        self,
        worker: int,
        episode: int,
        step: int,
        dones: dict[str, bool],
        rewards: list[RewardInformation],
        objectives: dict[str, float],
    ) -> None:
        self.worker = worker
        self.episode = episode
        self.step = step
        self.dones = dones
        """Environment uid -> done."""
        self.rewards = rewards
        """All rewards of this step."""
        self.objectives = objectives
        """Agent name -> objective value, for the agents that acted in this step."""


class PhaseProgress:
    """How far a phase is, for `check_phase`."""

    __slots__ = ("episodes", "episodes_finished", "mode")

    def __init__(self, episodes: int, episodes_finished: list[int], mode: str) -> None:
        self.episodes = episodes
        """Episodes per worker as configured."""
        self.episodes_finished = episodes_finished
        """Finished episodes, per worker."""
        self.mode = mode


class TerminationCondition:
    """Base class; both checks default to "do not end anything"."""

    def check_episode(self, outcome: StepOutcome) -> bool:
        return False

    def check_phase(self, progress: PhaseProgress) -> bool:
        return False


class EnvironmentTerminationCondition(TerminationCondition):
    """An episode ends when an environment is done (always the case in palaestrio)."""


class MaxEpisodesTerminationCondition(TerminationCondition):
    """A phase ends when every worker ran `episodes` episodes (always the case)."""


class VanillaRunGovernorTerminationCondition(TerminationCondition):
    """Both of the above, as palaestrAI's run-level default."""
