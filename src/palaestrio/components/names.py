"""`module:Class` names: palaestrAI aliases, importing, and "did you mean" hints.

palaestrAI's built-ins (its dummies, simulation controllers and termination conditions)
map to palaestrio's through the explicit table `PALAESTRAI_ALIASES`. Other palaestrAI
classes are imported (palaestrAI's Environment, Brain, Muscle, Objective, Reward and
state transformer subclasses then run through the adapters in
`palaestrio.components.palaestrai`); without palaestrAI installed, they are refused with
the extra to install. palaestrio imports palaestrAI only when a named module does.
"""

from __future__ import annotations

import importlib
import importlib.util
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
    if _is_palaestrai(module_name) and not palaestrai_installed():
        raise ComponentNameError(_needs_palaestrai(name)) from None
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and _is_palaestrai(error.name) and not palaestrai_installed():
            raise ComponentNameError(_needs_palaestrai(name)) from None
        if error.name is not None and (
            module_name == error.name or module_name.startswith(error.name + ".")
        ):
            message = f"module {error.name!r} not found{_module_hint(error.name)}"
            raise ComponentNameError(message) from None
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

            # A lazy module's names (palaestrAI's packages) are in its __all__ only;
            # palaestrAI's names palaestrio has built-ins for count too.
            known = {*dir(target), *getattr(target, "__all__", ()), *_aliased(owner)}
            hint = difflib.get_close_matches(attribute, sorted(known), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ComponentNameError(f"{owner!r} has no class {attribute!r}{suggestion}")
        target = getattr(target, attribute)
        owner = f"{owner}:{attribute}" if owner == module_name else f"{owner}.{attribute}"
    if not inspect.isclass(target):
        raise ComponentNameError(f"{name!r} is not a class")
    return target


def _aliased(module_name: str) -> list[str]:
    """The classes of `module_name` the alias table knows."""
    return [
        alias.partition(":")[2]
        for alias in PALAESTRAI_ALIASES
        if alias.partition(":")[0] == module_name
    ]


def _module_hint(missing: str) -> str:
    """' (did you mean ...?)' naming a module beside `missing` that exists, or ''."""
    parent, _, leaf = missing.rpartition(".")
    try:
        import pkgutil

        if parent:
            path = getattr(importlib.import_module(parent), "__path__", None)
            if path is None:
                return ""
            names = [info.name for info in pkgutil.iter_modules(path)]
        else:
            names = [info.name for info in pkgutil.iter_modules()]
    except Exception:  # the parent fails to import: no hint
        return ""
    import difflib

    hint = difflib.get_close_matches(leaf, names, n=1, cutoff=0.8)  # not any installed one
    if not hint:
        return ""
    suggestion = f"{parent}.{hint[0]}" if parent else hint[0]
    return f" (did you mean {suggestion!r}?)"


def palaestrai_installed() -> bool:
    try:
        return importlib.util.find_spec("palaestrai") is not None
    except (ImportError, ValueError):  # ValueError: blocked by `sys.modules[...] = None`
        return False


def _is_palaestrai(module_name: str) -> bool:
    return module_name == "palaestrai" or module_name.startswith("palaestrai.")


def _needs_palaestrai(name: str) -> str:
    import difflib

    module, _, attribute = name.partition(":")
    message = (
        f"{name!r} needs palaestrAI, which is not installed: pip install 'palaestrio[palaestrai]'"
    )
    hint = difflib.get_close_matches(attribute, _aliased(module), n=1)
    if hint:  # perhaps a misspelled palaestrAI class palaestrio has a built-in for
        suggestion = f"{module}:{hint[0]}"
        message += f" (or did you mean {suggestion!r}, which palaestrio has built in?)"
    return message


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
