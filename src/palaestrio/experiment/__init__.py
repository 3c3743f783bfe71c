"""Experiment files: palaestrAI 3.5's YAML shape, validated before anything runs."""

from .components import PALAESTRAI_ALIASES as PALAESTRAI_ALIASES
from .errors import ExperimentFileError as ExperimentFileError
from .errors import ExperimentFileWarning as ExperimentFileWarning
from .errors import Problem as Problem
from .loader import load_experiment_run_text as load_experiment_run_text
from .loader import load_experiment_runs as load_experiment_runs
from .model import ExperimentRun as ExperimentRun
from .model import PhaseSpec as PhaseSpec
