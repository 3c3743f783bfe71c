"""`module:Class` names: palaestrAI aliases, importing, and checking what a class is.

palaestrAI's built-ins (its dummies, simulation controllers and termination conditions)
map to palaestrio's through the explicit table `PALAESTRAI_ALIASES`; other palaestrAI
classes are refused with a hint to port them (palaestrAI itself is never imported).
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

_SIM = "palaestrio.simulation"

PALAESTRAI_ALIASES: dict[str, str] = {
    # dummies
    "palaestrai.environment:DummyEnvironment": f"{_SIM}:DummyEnvironment",
    "palaestrai.environment.dummy_environment:DummyEnvironment": f"{_SIM}:DummyEnvironment",
    "palaestrai.agent:DummyBrain": f"{_SIM}:DummyBrain",
    "palaestrai.agent.dummy_brain:DummyBrain": f"{_SIM}:DummyBrain",
    "palaestrai.agent:DummyMuscle": f"{_SIM}:DummyMuscle",
    "palaestrai.agent.dummy_muscle:DummyMuscle": f"{_SIM}:DummyMuscle",
    "palaestrai.agent:DummyObjective": f"{_SIM}:DummyObjective",
    "palaestrai.agent.dummy_objective:DummyObjective": f"{_SIM}:DummyObjective",
    # simulation controllers
    "palaestrai.simulation:Vanilla": f"{_SIM}:VanillaSimulationController",
    "palaestrai.simulation:VanillaSimController": f"{_SIM}:VanillaSimulationController",
    "palaestrai.simulation:VanillaSimulationController": f"{_SIM}:VanillaSimulationController",
    "palaestrai.simulation.vanilla_sim_controller:VanillaSimController": (
        f"{_SIM}:VanillaSimulationController"
    ),
    "palaestrai.simulation:TakingTurns": f"{_SIM}:TakingTurnsSimulationController",
    "palaestrai.simulation:TakingTurnsSimulationController": (
        f"{_SIM}:TakingTurnsSimulationController"
    ),
    "palaestrai.simulation.taking_turns_simulation_controller:TakingTurnsSimulationController": (
        f"{_SIM}:TakingTurnsSimulationController"
    ),
    # termination conditions
    "palaestrai.experiment:EnvironmentTerminationCondition": (
        f"{_SIM}:EnvironmentTerminationCondition"
    ),
    "palaestrai.experiment.environment_termination_condition:EnvironmentTerminationCondition": (
        f"{_SIM}:EnvironmentTerminationCondition"
    ),
    "palaestrai.simulation:VanillaSimControllerTerminationCondition": (
        f"{_SIM}:EnvironmentTerminationCondition"
    ),
    "palaestrai.simulation.vanilla_simcontroller_termination_condition:"
    "VanillaSimControllerTerminationCondition": f"{_SIM}:EnvironmentTerminationCondition",
    "palaestrai.experiment:MaxEpisodesTerminationCondition": (
        f"{_SIM}:MaxEpisodesTerminationCondition"
    ),
    "palaestrai.experiment.max_episodes_termination_condition:MaxEpisodesTerminationCondition": (
        f"{_SIM}:MaxEpisodesTerminationCondition"
    ),
    "palaestrai.experiment:VanillaRunGovernorTerminationCondition": (
        f"{_SIM}:VanillaRunGovernorTerminationCondition"
    ),
    "palaestrai.experiment.vanilla_rungovernor_termination_condition:"
    "VanillaRunGovernorTerminationCondition": f"{_SIM}:VanillaRunGovernorTerminationCondition",
}

_NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_CONTROLLER_SUFFIX = "SimulationController"


class ComponentNameError(Exception):
    """A name that does not lead to a usable class; the message says why."""


def resolve_name(name: str) -> str:
    """The palaestrio name for `name` (palaestrAI aliases replaced)."""
    return PALAESTRAI_ALIASES.get(name, name)


def import_class(name: str) -> type[Any]:
    """The class `module:Class` names (after aliasing); ComponentNameError if none."""
    name = resolve_name(name)
    if not _NAME.match(name):
        raise ComponentNameError(f"expected 'module:Class', found {name!r}")
    module_name, _, attribute_path = name.partition(":")
    if module_name == "palaestrai" or module_name.startswith("palaestrai."):
        raise ComponentNameError(
            f"{name!r} is a palaestrAI class that palaestrio has no built-in equivalent "
            "for; port it (derive from palaestrio's base classes) and name the port"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (
            module_name == error.name or module_name.startswith(error.name + ".")
        ):
            raise ComponentNameError(f"module {error.name!r} not found") from None
        raise ComponentNameError(
            f"importing module {module_name!r} failed: {type(error).__name__}: {error}"
        ) from None
    except Exception as error:
        raise ComponentNameError(
            f"importing module {module_name!r} failed: {type(error).__name__}: {error}"
        ) from None
    owner = module_name
    for attribute in attribute_path.split("."):
        if not hasattr(target, attribute):
            import difflib  # only here: importing it costs more than a valid file's check

            hint = difflib.get_close_matches(attribute, dir(target), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ComponentNameError(f"{owner!r} has no class {attribute!r}{suggestion}")
        target = getattr(target, attribute)
        owner = f"{owner}:{attribute}" if owner == module_name else f"{owner}.{attribute}"
    if not inspect.isclass(target):
        raise ComponentNameError(f"{name!r} is not a class")
    return target


def import_controller_class(name: str) -> tuple[str, type[Any]]:
    """Like `import_class` for simulation names, which palaestrAI may write without the
    `SimulationController` suffix (`...:Vanilla`); returns the name that worked."""
    try:
        return resolve_name(name), import_class(name)
    except ComponentNameError:
        if name.endswith(_CONTROLLER_SUFFIX):
            raise
        longer = name + _CONTROLLER_SUFFIX
        try:
            return resolve_name(longer), import_class(longer)
        except ComponentNameError:
            pass
        raise


def kind_problem(cls: type[Any], kind: str) -> str | None:
    """Why `cls` cannot serve as a component of `kind`, or None if it can."""
    bases = _kinds()
    expected = bases[kind]
    if not issubclass(cls, expected):
        actually = [other for other, base in bases.items() if issubclass(cls, base)]
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
        shown = ", ".join(
            str(parameter.replace(annotation=parameter.empty))
            for parameter in signature.parameters.values()
        )
        return f"params do not fit {cls.__qualname__}({shown}): {error}"
    return None


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _kinds() -> dict[str, type[Any]]:
    # Imported here: palaestrio.simulation imports this module's `import_class`.
    from ..simulation.agent import Brain, Muscle, Objective
    from ..simulation.controllers import SimulationController
    from ..simulation.environment import Environment, EnvironmentStateTransformer, Reward
    from ..simulation.termination import TerminationCondition

    return {
        "environment": Environment,
        "reward": Reward,
        "state transformer": EnvironmentStateTransformer,
        "brain": Brain,
        "muscle": Muscle,
        "objective": Objective,
        "simulation controller": SimulationController,
        "termination condition": TerminationCondition,
    }


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
