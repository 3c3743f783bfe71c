"""Fast value checks for gymnasium spaces, and conversion of values to plain data.

gymnasium's `Space.contains` takes about 7 µs and warns when given a Python number;
a step with ten actuators would spend most of its time there. `value_check(space)`
builds, once per actuator, a function that checks a value against the space and returns
it as plain data (int, float, bool, lists) for the records, raising ValueError when it
is outside. Scalar `Discrete` and `Box` values take a few hundred nanoseconds.

gymnasium and numpy are imported only when a check is built, so that importing
palaestrio (and validating an experiment file) stays fast.
"""

from __future__ import annotations

import datetime
import operator
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from palaestrio.components.spaces import Discrete

if TYPE_CHECKING:
    from gymnasium import Space

ValueCheck = Callable[[Any], Any]
"""Checks a value against a space; returns it as plain data or raises ValueError.
A check for integers in [start, stop) carries `integer_range = (start, stop)`, which
lets the step loop accept a plain int without calling it."""

PLAIN_SCALARS = frozenset({int, float, str, bool, type(None)})


def to_plain(value: Any) -> Any:
    """`value` as data msgpack and JSON can carry (numpy scalars and arrays included)."""
    kind = type(value)
    if kind in PLAIN_SCALARS:
        return value
    if kind is list or kind is tuple:
        return [to_plain(item) for item in value]
    if kind is dict:
        return {str(key): to_plain(item) for key, item in value.items()}
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if tolist is not None:
        return to_plain(tolist())
    for plain in (bool, int, float, str):  # subclasses such as enums; bool before int
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"a value of type {kind.__qualname__} is not plain data ({value!r})")


def _integer(value: Any) -> int | None:
    """`value` as an int if it is an integer (Python, numpy, 0-d array), else None."""
    if type(value) is int:
        return value
    if isinstance(value, float):
        return None
    try:
        return operator.index(value)
    except TypeError:
        pass
    if getattr(value, "shape", None) == () and getattr(value, "dtype", None) is not None:
        return int(value.item()) if value.dtype.kind in "biu" else None
    return None


def _number(value: Any) -> float | int | None:
    """`value` as a Python float or int if it is a real number, else None."""
    kind = type(value)
    if kind is float or kind is int:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return int(value)
    if getattr(value, "shape", None) == () and getattr(value, "dtype", None) is not None:
        if value.dtype.kind in "biuf":
            return value.item()  # type: ignore[no-any-return]
        return None
    if isinstance(value, int | float):
        return value
    return None


def value_check(space: Space[Any] | Discrete | None) -> ValueCheck:
    """A check for values of `space` (None: anything plain goes)."""
    if space is None:
        return to_plain
    if isinstance(space, Discrete):  # palaestrio's own: no gymnasium needed
        return _discrete_check(space.n, space.start, repr(space))
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return _discrete_check(int(space.n), int(space.start), repr(space))
    if isinstance(space, spaces.Box):
        return _box_check(space)
    if isinstance(space, spaces.MultiBinary):
        return _multi_binary_check(space)
    if isinstance(space, spaces.MultiDiscrete):
        return _multi_discrete_check(space)
    if isinstance(space, spaces.Tuple):
        return _tuple_check([value_check(inner) for inner in space.spaces], repr(space))
    return _generic_check(space)


def _discrete_check(n: int, start: int, description: str) -> ValueCheck:
    stop = start + n

    def check(value: Any) -> Any:
        number = value if type(value) is int else _integer(value)
        if number is not None and start <= number < stop:
            return number
        raise ValueError(f"{value!r} is not in {description}")

    check.integer_range = (start, stop)  # type: ignore[attr-defined]  # the loop's fast path
    return check


def _box_check(space: Any) -> ValueCheck:
    import numpy as np

    description = repr(space)
    dtype = space.dtype
    integral = dtype.kind in "biu"
    low, high = space.low, space.high
    if space.shape == ():
        low_value, high_value = low.item(), high.item()

        def check_scalar(value: Any) -> Any:
            number = _integer(value) if integral else _number(value)
            if number is not None:
                if low_value < number < high_value:
                    return number
                # At the bounds, compare as the space's dtype does (float32 rounding).
                cast = np.asarray(number, dtype=dtype)
                if bool(low <= cast) and bool(cast <= high):
                    return number
            raise ValueError(f"{value!r} is not in {description}")

        return check_scalar

    def check_array(value: Any) -> Any:
        array = _array(value, "biu" if integral else "biuf")
        if array is not None and array.shape == space.shape:
            cast = array.astype(dtype)
            if bool(np.all(low <= cast)) and bool(np.all(cast <= high)):
                return array.tolist()
        raise ValueError(f"{value!r} is not in {description}")

    return check_array


def _array(value: Any, kinds: str) -> Any:
    """`value` as a numpy array if its elements are of `kinds`, else None."""
    import numpy as np

    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    return array if array.dtype.kind in kinds else None


def _multi_binary_check(space: Any) -> ValueCheck:
    import numpy as np

    description = repr(space)

    def check(value: Any) -> Any:
        array = _array(value, "biu")
        if (
            array is not None
            and array.shape == space.shape
            and bool(np.all((array == 0) | (array == 1)))
        ):
            return array.astype(np.int64).tolist()
        raise ValueError(f"{value!r} is not in {description}")

    return check


def _multi_discrete_check(space: Any) -> ValueCheck:
    import numpy as np

    description = repr(space)
    start, stop = space.start, space.start + space.nvec

    def check(value: Any) -> Any:
        array = _array(value, "biu")
        if (
            array is not None
            and array.shape == space.shape
            and bool(np.all(start <= array))
            and bool(np.all(array < stop))
        ):
            return array.astype(np.int64).tolist()
        raise ValueError(f"{value!r} is not in {description}")

    return check


def _tuple_check(checks: list[ValueCheck], description: str) -> ValueCheck:
    def check(value: Any) -> Any:
        if isinstance(value, tuple | list) and len(value) == len(checks):
            try:
                return [inner(item) for inner, item in zip(checks, value, strict=True)]
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not in {description}")

    return check


def _generic_check(space: Space[Any]) -> ValueCheck:
    description = repr(space)

    def check(value: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gymnasium warns when it casts
            inside = space.contains(value)
        if inside:
            return to_plain(value)
        raise ValueError(f"{value!r} is not in {description}")

    return check
