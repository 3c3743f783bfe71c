"""Adapters for palaestrAI environments, rewards and state transformers.

palaestrAI builds an environment with `uid`, `broker_uri` and `seed` and sets `_name` to
the file's uid; its `reset` is `shutdown` + `start_environment`, which palaestrio's loop
does too (`EnvironmentAdapter.reset`). Coroutine methods (e.g. palaestrai-mosaik's)
run on one asyncio loop kept for the environment's lifetime (resets included), as
palaestrAI keeps its tasks alive between calls; it runs in the step loop's thread, so a
cancellation takes effect at the next step boundary.
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

    def reset(self) -> EnvironmentBaseline:
        """palaestrAI's reset: `shutdown` + `start_environment`, on the same asyncio loop
        (tasks an environment started stay alive)."""
        self._call(self.inner.shutdown)
        return self.start_environment()

    def shutdown(self) -> None:
        """The phase's end: the environment's `shutdown`, then the loop's tasks are
        cancelled and the loop closed."""
        try:
            self._call(self.inner.shutdown)
        finally:
            loop, self._loop = self._loop, None
            if loop is not None:
                _close(loop)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    async def cancel_tasks() -> None:
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await loop.shutdown_asyncgens()

    try:
        loop.run_until_complete(cancel_tasks())
    finally:
        loop.close()


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
