"""palaestrio's gymnasium-free `Discrete` (the dummies' spaces) stands in for gymnasium's."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from gymnasium.spaces import Discrete as GymnasiumDiscrete

from palaestrio.components.spaces import Discrete, as_gymnasium
from palaestrio.simulation.spaces import value_check


def test_it_equals_gymnasiums_and_says_so_alike() -> None:
    assert Discrete(11) == GymnasiumDiscrete(11)
    assert Discrete(3, start=2) == GymnasiumDiscrete(3, start=2)
    assert Discrete(3) != GymnasiumDiscrete(3, start=1) and Discrete(3) != Discrete(4)
    assert repr(Discrete(11)) == repr(GymnasiumDiscrete(11))
    assert repr(Discrete(3, start=2)) == repr(GymnasiumDiscrete(3, start=2))
    assert {Discrete(5), Discrete(5)} == {Discrete(5)}


@pytest.mark.parametrize(
    "value", [0, 4, -1, 5, np.int64(3), np.array(2), np.array([2]), 2.0, True, "1", None]
)
def test_it_contains_what_gymnasiums_contains(value: object) -> None:
    assert Discrete(5).contains(value) == GymnasiumDiscrete(5).contains(value)


def test_samples_are_in_the_space_and_repeat_with_the_seed() -> None:
    space = Discrete(7, start=3)
    space.seed(1)
    first = [space.sample() for _ in range(50)]
    space.seed(1)
    assert [space.sample() for _ in range(50)] == first
    assert all(space.contains(value) for value in first) and len(set(first)) > 1


def test_other_attributes_and_conversion_come_from_gymnasium() -> None:
    space = Discrete(4, start=1)
    assert space.dtype == GymnasiumDiscrete(4).dtype
    real = as_gymnasium(space)
    assert isinstance(real, GymnasiumDiscrete) and (real.n, real.start) == (4, 1)
    assert as_gymnasium(real) is real and as_gymnasium(None) is None
    assert copy.deepcopy(space) == space and pickle.loads(pickle.dumps(space)) == space


def test_values_are_checked_as_for_gymnasiums() -> None:
    check = value_check(Discrete(3, start=1))
    assert [check(1), check(np.int64(3))] == [1, 3]
    for outside in (0, 4, 1.5):
        with pytest.raises(ValueError, match=r"not in Discrete\(3, start=1\)"):
            check(outside)
