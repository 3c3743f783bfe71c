"""palaestrio: palaestrAI's experiment executor on trio structured concurrency."""

from .experiment import ExperimentFileError as ExperimentFileError
from .experiment import ExperimentRun as ExperimentRun
from .experiment import load_experiment_runs as load_experiment_runs
from .simulation import ActuatorInformation as ActuatorInformation
from .simulation import Brain as Brain
from .simulation import ComponentError as ComponentError
from .simulation import Environment as Environment
from .simulation import EnvironmentBaseline as EnvironmentBaseline
from .simulation import EnvironmentState as EnvironmentState
from .simulation import EnvironmentStateTransformer as EnvironmentStateTransformer
from .simulation import Memory as Memory
from .simulation import Muscle as Muscle
from .simulation import Objective as Objective
from .simulation import Reward as Reward
from .simulation import RewardInformation as RewardInformation
from .simulation import SensorInformation as SensorInformation
from .simulation import SimulationController as SimulationController
from .simulation import TerminationCondition as TerminationCondition
from .simulation import run_in_process as run_in_process

__version__ = "0.1.0"
