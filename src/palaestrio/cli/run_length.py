"""How many steps a run will take, when its experiment file tells (for progress).

An episode ends when any environment is done; the environments that palaestrAI's
and palaestrio's dummies model take `max_iter` steps (a parameter, or its default in
the class's constructor), so an episode whose every environment has `max_iter` lasts
the smallest of them, unless a
condition other than the built-ins (which never end anything early) may end it
sooner. A phase runs `episodes` episodes on each worker.
"""

from __future__ import annotations

import inspect

from palaestrio.components.names import ComponentNameError, import_class
from palaestrio.experiment import ExperimentRun, PhaseSpec
from palaestrio.records import ComponentSpec

BUILT_IN_CONDITIONS = frozenset(
    {
        "EnvironmentTerminationCondition",
        "MaxEpisodesTerminationCondition",
        "VanillaRunGovernorTerminationCondition",
    }
)


def expected_steps(run: ExperimentRun) -> int | None:
    """The steps the whole run will take (all phases and workers), or None if unknown."""
    if not _built_in(run.run_condition):
        return None
    total = 0
    for phase in run.phases:
        steps = _phase_steps(phase)
        if steps is None:
            return None
        total += steps
    return total


def _phase_steps(phase: PhaseSpec) -> int | None:
    if not phase.environments or not all(map(_built_in, phase.conditions)):
        return None
    lengths = [_max_iter(environment.environment) for environment in phase.environments]
    if None in lengths:
        return None
    return min(length for length in lengths if length is not None) * phase.episodes * phase.workers


def _max_iter(environment: ComponentSpec) -> int | None:
    max_iter = environment.params.get("max_iter", _default_max_iter(environment.name))
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
        return None
    return max_iter


def _default_max_iter(name: str) -> object:
    """The constructor's default `max_iter` (validation imported the class already)."""
    try:
        parameter = inspect.signature(import_class(name)).parameters.get("max_iter")
    except (ComponentNameError, TypeError, ValueError):
        return None
    return None if parameter is None else parameter.default


def _built_in(condition: ComponentSpec) -> bool:
    module, _, name = condition.name.rpartition(":")
    return module.split(".")[0] in ("palaestrio", "palaestrai") and name in BUILT_IN_CONDITIONS
