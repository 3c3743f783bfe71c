"""palaestrAI's own dummies under a module name palaestrio's alias table does not know:
they must run through the adapters (real palaestrAI code), not as palaestrio's dummies."""

from palaestrai.agent.dummy_brain import DummyBrain
from palaestrai.agent.dummy_muscle import DummyMuscle
from palaestrai.agent.dummy_objective import DummyObjective
from palaestrai.environment.dummy_environment import DummyEnvironment

__all__ = ["DummyBrain", "DummyEnvironment", "DummyMuscle", "DummyObjective", "SeeingObjective"]


class SeeingObjective(DummyObjective):
    """palaestrAI's DummyObjective that keeps what it was given, for the tests."""

    seen: list[object] = []

    def internal_reward(self, memory, **kwargs):  # type: ignore[no-untyped-def]
        SeeingObjective.seen.append(memory)
        return super().internal_reward(memory, **kwargs)
