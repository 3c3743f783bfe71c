"""Adapters for palaestrAI environments, rewards and state transformers.

palaestrAI builds an environment with `uid`, `broker_uri` and `seed` and sets `_name` to
the file's uid; its `reset` is `shutdown` + `start_environment`, which palaestrio's loop
does for an environment that does not override `reset`. Coroutine methods (e.g.
palaestrai-mosaik's) run on one asyncio loop kept for the environment's lifetime, as
palaestrAI keeps its tasks alive between calls.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from ..environment import (
    Environment,
    EnvironmentBaseline,
    EnvironmentState,
    EnvironmentStateTransformer,
    Reward,
)
from ..information import ActuatorInformation, RewardInformation
from . import convert


class EnvironmentAdapter(Environment):
    """A palaestrAI environment as a palaestrio one."""

    def __init__(self, inner: Any, uid: str) -> None:
        super().__init__(uid, getattr(inner, "seed", 0))
        self.inner = inner
        inner._name = uid
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def reward(self) -> Reward | None:
        return self._reward

    @reward.setter
    def reward(self, reward: Reward | None) -> None:
        self._reward = reward
        self.inner.reward = reward.inner if isinstance(reward, RewardAdapter) else reward

    def _call(self, method: Any, *args: Any) -> Any:
        result = method(*args)
        if inspect.isawaitable(result):
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            result = self._loop.run_until_complete(result)
        return result

    def start_environment(self) -> EnvironmentBaseline:
        return convert.baseline(self._call(self.inner.start_environment))

    def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:
        return convert.state(
            self._call(self.inner.update, convert.to_palaestrai_actuators(actuators))
        )

    def shutdown(self) -> None:
        try:
            self._call(self.inner.shutdown)
        finally:
            if self._loop is not None:
                self._loop.close()
                self._loop = None


class RewardAdapter(Reward):
    """A palaestrAI reward; a palaestrAI environment gets the reward itself."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def __call__(self, state: EnvironmentState) -> list[RewardInformation]:
        rewards = self.inner(convert.to_palaestrai_state(state))
        return convert.from_palaestrai_rewards(list(rewards))


class StateTransformerAdapter(EnvironmentStateTransformer):
    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def __call__(self, state: EnvironmentState) -> EnvironmentState:
        return convert.state(self.inner(convert.to_palaestrai_state(state)))


def wrap(component: Any, kind: str, name: str) -> Any:
    if kind == "environment":
        return EnvironmentAdapter(component, name)
    if kind == "reward":
        return RewardAdapter(component)
    return StateTransformerAdapter(component)
