"""Actuator value checks per gymnasium space, and conversion to plain data."""

from __future__ import annotations

import datetime
import enum
from typing import Any

import numpy as np
import pytest
from gymnasium.spaces import Box, Dict, Discrete, MultiBinary, MultiDiscrete, Tuple

from palaestrio.simulation.spaces import to_plain, value_check


@pytest.mark.parametrize(
    ("space", "value", "plain"),
    [
        (Discrete(5), 4, 4),
        (Discrete(5), np.int64(0), 0),
        (Discrete(5), np.array(3), 3),
        (Discrete(3, start=-1), -1, -1),
        (Box(0, 10, shape=()), 10, 10),
        (Box(0, 10, shape=()), 2.5, 2.5),
        (Box(0, 10, shape=()), np.float32(7.5), 7.5),
        (Box(0.1, 1.0, shape=(), dtype=np.float32), 0.1, 0.1),  # float32 bound, float64 value
        (Box(0, 10, shape=(), dtype=np.int64), np.int32(4), 4),
        (Box(-1, 1, shape=(2,)), [0.5, -1.0], [0.5, -1.0]),
        (Box(-1, 1, shape=(2,)), np.array([0.0, 1.0]), [0.0, 1.0]),
        (MultiBinary(3), [1, 0, 1], [1, 0, 1]),
        (MultiBinary(3), np.array([True, False, True]), [1, 0, 1]),
        (MultiDiscrete([3, 4]), [2, 3], [2, 3]),
        (Tuple((Discrete(2), Box(0, 1, shape=()))), (1, 0.5), [1, 0.5]),
        (Dict({"on": Discrete(2)}), {"on": 1}, {"on": 1}),
    ],
)
def test_values_inside_their_space_pass_as_plain_data(space: Any, value: Any, plain: Any) -> None:
    checked = value_check(space)(value)
    assert checked == plain
    assert type(checked) is type(plain)


@pytest.mark.parametrize(
    ("space", "value"),
    [
        (Discrete(5), 5),
        (Discrete(5), -1),
        (Discrete(5), 2.0),
        (Discrete(5), "2"),
        (Discrete(3, start=-1), 2),
        (Box(0, 10, shape=()), 10.5),
        (Box(0, 10, shape=()), float("nan")),
        (Box(0, 10, shape=()), [1.0]),
        (Box(0, 10, shape=(), dtype=np.int64), 2.5),
        (Box(-1, 1, shape=(2,)), [0.5]),
        (Box(-1, 1, shape=(2,)), [0.5, 2.0]),
        (Box(-1, 1, shape=(2,)), "ab"),
        (MultiBinary(3), [1, 2, 0]),
        (MultiBinary(3), [1, 0]),
        (MultiDiscrete([3, 4]), [3, 0]),
        (Tuple((Discrete(2), Discrete(2))), (1,)),
        (Tuple((Discrete(2), Discrete(2))), (1, 2)),
        (Dict({"on": Discrete(2)}), {"on": 2}),
    ],
)
def test_values_outside_their_space_are_refused(space: Any, value: Any) -> None:
    with pytest.raises(ValueError, match="is not in"):
        value_check(space)(value)


def test_a_discrete_check_offers_its_range_for_the_inline_fast_path() -> None:
    assert value_check(Discrete(4, start=2)).integer_range == (2, 6)  # type: ignore[attr-defined]


class Colour(enum.IntEnum):
    RED = 1


def test_to_plain() -> None:
    assert to_plain(np.float32(0.5)) == 0.5
    assert to_plain(np.array([[1, 2], [3, 4]])) == [[1, 2], [3, 4]]
    assert to_plain((np.int8(1), {"a": np.bool_(True)})) == [1, {"a": True}]
    assert type(to_plain(Colour.RED)) is int
    assert to_plain(datetime.datetime(2024, 5, 1, 12, 0)) == "2024-05-01T12:00:00"
    with pytest.raises(TypeError, match="a value of type object is not plain data"):
        to_plain(object())
