"""Whether an imported class can serve as a component of a kind, and whether the
parameters of an experiment file fit its constructor."""

from __future__ import annotations

import inspect
from typing import Any

from .agent import Brain, Muscle, Objective
from .controllers import SimulationController
from .environment import Environment, EnvironmentStateTransformer, Reward
from .palaestrai import legacy_brain, palaestrai_kind
from .termination import TerminationCondition

KINDS: dict[str, type[Any]] = {
    "environment": Environment,
    "reward": Reward,
    "state transformer": EnvironmentStateTransformer,
    "brain": Brain,
    "muscle": Muscle,
    "objective": Objective,
    "simulation controller": SimulationController,
    "termination condition": TerminationCondition,
}
"""Each kind of component an experiment file names, and the base class it derives from."""


def kind_problem(cls: type[Any], kind: str) -> str | None:
    """Why `cls` cannot serve as a component of `kind`, or None if it can."""
    expected = KINDS[kind]
    if not issubclass(cls, expected) and palaestrai_kind(cls) != kind:
        actually = [other for other, base in KINDS.items() if issubclass(cls, base)]
        actually += [other] if (other := palaestrai_kind(cls)) else []
        what = _a(actually[0]) if actually else "not a palaestrio component"
        return (
            f"{cls.__module__}.{cls.__qualname__} is {what}, expected {_a(kind)} "
            f"(a subclass of palaestrio.{expected.__name__})"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        return f"{cls.__qualname__} is abstract (does not implement {missing})"
    return None


def binding_problem(cls: type[Any], params: dict[str, Any], given: dict[str, Any]) -> str | None:
    """Why `cls(**given, **params)` would not bind to the constructor, or None."""
    clash = sorted(set(params) & set(given))
    if clash:
        return f"params must not set {', '.join(clash)} (palaestrio passes it)"
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None  # no introspectable signature (e.g. a C extension): try at run time
    try:
        signature.bind(**given, **params)
    except TypeError as error:
        if not given and palaestrai_kind(cls) == "brain" and legacy_brain(cls, params):
            return None  # palaestrAI's retry with seed, sensors and actuators binds
        shown = ", ".join(
            str(parameter.replace(annotation=parameter.empty))
            for parameter in signature.parameters.values()
        )
        return f"params do not fit {cls.__qualname__}({shown}): {error}"
    return None


def environment_arguments(cls: type[Any], uid: str, seed: int) -> dict[str, Any]:
    """What palaestrio passes an environment's constructor besides its params.

    palaestrAI 3.5 environments often still take `broker_uri`; it is passed as None so
    that such an environment ports by changing its imports.
    """
    given: dict[str, Any] = {"uid": uid, "seed": seed}
    try:
        if "broker_uri" in inspect.signature(cls).parameters:
            given["broker_uri"] = None
    except (TypeError, ValueError):
        pass
    return given


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"
