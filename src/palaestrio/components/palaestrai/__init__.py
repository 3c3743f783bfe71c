"""palaestrAI components in palaestrio's step loop (the `palaestrio[palaestrai]` extra).

`palaestrai_kind` tells a palaestrAI Environment, Brain, Muscle, Objective, Reward or
state transformer by its base classes' names, so palaestrio never imports palaestrAI
itself: only a run file naming a module that imports it does. `wrap` puts such an
object into an adapter (modules `environment` and `agent`, which import palaestrAI and
are loaded only then) that converts sensor, actuator and reward information, states,
simulation times and palaestrAI's pandas `Memory`.
"""

from __future__ import annotations

import inspect
from typing import Any

EXTRA_HINT = "pip install 'palaestrio[palaestrai]'"
"""How to get palaestrAI, for error messages."""

_BASES: dict[tuple[str, str], str] = {
    ("palaestrai.environment.environment", "Environment"): "environment",
    ("palaestrai.environment.reward", "Reward"): "reward",
    (
        "palaestrai.environment.environment_state_transformer",
        "EnvironmentStateTransformer",
    ): "state transformer",
    ("palaestrai.agent.brain", "Brain"): "brain",
    ("palaestrai.agent.muscle", "Muscle"): "muscle",
    ("palaestrai.agent.objective", "Objective"): "objective",
}


LAZY_EXPORTS: dict[tuple[str, str], tuple[str, str]] = {
    ("palaestrai.agent", "Brain"): ("palaestrai.agent.brain", "Brain"),
    ("palaestrai.agent", "Muscle"): ("palaestrai.agent.muscle", "Muscle"),
    ("palaestrai.agent", "Objective"): ("palaestrai.agent.objective", "Objective"),
    ("palaestrai.environment", "Environment"): (
        "palaestrai.environment.environment",
        "Environment",
    ),
    ("palaestrai.environment", "Reward"): ("palaestrai.environment.reward", "Reward"),
    ("palaestrai.environment", "EnvironmentStateTransformer"): (
        "palaestrai.environment.environment_state_transformer",
        "EnvironmentStateTransformer",
    ),
}
"""Where palaestrAI's packages get the base classes they export lazily (a module
`__getattr__`), for reading a component's source (`source_check`)."""


def palaestrai_base_kind(module: str, qualname: str) -> str | None:
    """The kind of component palaestrAI's base class `module.qualname` is, if it is one."""
    return _BASES.get((module, qualname))


def palaestrai_kind(cls: type[Any]) -> str | None:
    """The kind of component `cls` is to palaestrAI (a key of `kinds.KINDS`), or None
    if it derives from none of palaestrAI's component base classes."""
    for base in getattr(cls, "__mro__", ()):
        kind = _BASES.get((base.__module__, base.__qualname__))
        if kind is not None:
            return kind
    return None


LEGACY_BRAIN_ARGUMENTS = ("seed", "sensors", "actuators")
"""What palaestrAI passes a brain's constructor when `cls(**params)` raised TypeError
(older brains take them; palaestrAI calls that form deprecated but still makes it)."""


def legacy_brain(cls: type[Any], params: dict[str, Any]) -> bool:
    """Whether palaestrAI would make brain `cls` only in its retry: `cls(**params)`
    does not bind, `cls(**params, seed=, sensors=, actuators=)` does."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return False
    try:
        signature.bind(**params)
    except TypeError:
        pass
    else:
        return False
    legacy = {name: None for name in LEGACY_BRAIN_ARGUMENTS}
    try:
        signature.bind(**{**params, **legacy})
    except TypeError:
        return False
    return True


def wrap_legacy_brain(cls: type[Any], params: dict[str, Any], name: str) -> Any:
    """A palaestrio brain running palaestrAI's brain `cls(**params, seed=, sensors=,
    actuators=)`, made once its sensors and actuators are known."""
    from . import agent

    def make(**legacy: Any) -> Any:
        return cls(**params, **legacy)

    return agent.BrainAdapter(None, name, make=make)


def is_adapter(component: object) -> bool:
    """Whether `component` is one of the adapters `wrap` makes."""
    return type(component).__module__.startswith(__name__ + ".")


def wrap(component: Any, kind: str, name: str) -> Any:
    """A palaestrio component running palaestrAI's `component` of `kind`; `name` is
    the environment's uid or the agent's name."""
    if kind in ("environment", "reward", "state transformer"):
        from . import environment

        return environment.wrap(component, kind, name)
    from . import agent

    return agent.wrap(component, kind, name)
