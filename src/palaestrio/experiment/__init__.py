"""Experiment files: palaestrAI 3.5's YAML shape, validated before anything runs.

Pure data: the run model, loading and checks. Component names are resolved through
`palaestrio.components`; nothing here imports `palaestrio.simulation`.

Submodules load on first use: a RunGovernor needs only the run model, not the YAML
parser and the validation machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from palaestrio._lazy import lazy_attributes

_WHERE = {
    "ExperimentFileError": "errors",
    "ExperimentFileWarning": "errors",
    "Problem": "errors",
    "load_experiment_run_text": "loader",
    "load_experiment_runs": "loader",
    "ExperimentRun": "model",
    "PhaseSpec": "model",
}

__all__ = [
    "PALAESTRAI_ALIASES",
    "ExperimentFileError",
    "ExperimentFileWarning",
    "ExperimentRun",
    "PhaseSpec",
    "Problem",
    "load_experiment_run_text",
    "load_experiment_runs",
]


_submodule_attribute = lazy_attributes(__name__, _WHERE)


def __getattr__(name: str) -> Any:
    if name == "PALAESTRAI_ALIASES":  # the table lives with name resolution
        from ..components.names import PALAESTRAI_ALIASES

        return PALAESTRAI_ALIASES
    return _submodule_attribute(name)


if TYPE_CHECKING:
    from ..components.names import PALAESTRAI_ALIASES as PALAESTRAI_ALIASES
    from .errors import ExperimentFileError as ExperimentFileError
    from .errors import ExperimentFileWarning as ExperimentFileWarning
    from .errors import Problem as Problem
    from .loader import load_experiment_run_text as load_experiment_run_text
    from .loader import load_experiment_runs as load_experiment_runs
    from .model import ExperimentRun as ExperimentRun
    from .model import PhaseSpec as PhaseSpec
