"""`Discrete` without gymnasium: the spaces of palaestrio's own dummies.

gymnasium (and numpy with it) costs a RunGovernor about as much as all its other imports
together, and a run of the dummies needs neither. This `Discrete` is gymnasium's for what
palaestrio and the dummies use: `n`, `start`, `shape`, `contains`, `sample`, `seed`, its
repr and equality. Any other attribute (`dtype`, `np_random`, ...) comes from an equal
gymnasium space, made on first use; `as_gymnasium` gives code that needs a real one
(palaestrAI's components, `gymnasium.spaces` functions) exactly that.
"""

from __future__ import annotations

import operator
import random
from typing import Any


class Discrete:
    """The integers ``start, ..., start + n - 1``, like ``gymnasium.spaces.Discrete``."""

    __slots__ = ("_gymnasium", "_random", "n", "start")
    shape: tuple[int, ...] = ()

    def __init__(self, n: int, start: int = 0, seed: int | None = None) -> None:
        if n <= 0:
            raise ValueError(f"Discrete needs n > 0, not {n}")
        self.n = int(n)
        self.start = int(start)
        self._random = random.Random(seed)
        self._gymnasium: Any = None

    def contains(self, x: Any) -> bool:
        if isinstance(x, float):
            return False
        try:
            value = operator.index(x)
        except TypeError:
            if getattr(x, "shape", None) != () or getattr(x, "dtype", None) is None:
                return False
            if x.dtype.kind not in "iu":
                return False
            value = int(x.item())
        return self.start <= value < self.start + self.n

    __contains__ = contains

    def sample(self) -> int:
        return self.start + self._random.randrange(self.n)

    def seed(self, seed: int | None = None) -> list[int | None]:
        self._random = random.Random(seed)
        return [seed]

    def as_gymnasium(self) -> Any:
        """An equal ``gymnasium.spaces.Discrete`` (the same one each time)."""
        if self._gymnasium is None:
            from gymnasium.spaces import Discrete as GymnasiumDiscrete

            self._gymnasium = GymnasiumDiscrete(self.n, start=self.start)
        return self._gymnasium

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy, pickle and slots must not reach gymnasium
            raise AttributeError(name)
        return getattr(self.as_gymnasium(), name)

    def __eq__(self, other: object) -> bool:
        return (
            type(other).__name__ == "Discrete"
            and getattr(other, "n", None) == self.n
            and getattr(other, "start", None) == self.start
        )

    def __hash__(self) -> int:
        return hash((Discrete, self.n, self.start))

    def __repr__(self) -> str:
        return (
            f"Discrete({self.n})" if self.start == 0 else f"Discrete({self.n}, start={self.start})"
        )


def as_gymnasium(space: Any) -> Any:
    """`space` as gymnasium has it (a gymnasium space, or None, stays as it is)."""
    return space.as_gymnasium() if type(space) is Discrete else space
