"""Components (environments, agents, termination, simulation control), palaestrio's
built-in examples, and the step loop that runs an experiment run in one process."""

from .agent import Brain as Brain
from .agent import Memory as Memory
from .agent import MemoryRow as MemoryRow
from .agent import Mode as Mode
from .agent import Muscle as Muscle
from .agent import Objective as Objective
from .controllers import SimulationController as SimulationController
from .controllers import TakingTurnsSimulationController as TakingTurnsSimulationController
from .controllers import VanillaSimulationController as VanillaSimulationController
from .dummies import DummyBrain as DummyBrain
from .dummies import DummyEnvironment as DummyEnvironment
from .dummies import DummyMuscle as DummyMuscle
from .dummies import DummyObjective as DummyObjective
from .environment import Environment as Environment
from .environment import EnvironmentBaseline as EnvironmentBaseline
from .environment import EnvironmentState as EnvironmentState
from .environment import EnvironmentStateTransformer as EnvironmentStateTransformer
from .environment import Reward as Reward
from .errors import ComponentError as ComponentError
from .errors import SensorActuatorMismatchError as SensorActuatorMismatchError
from .information import ActuatorInformation as ActuatorInformation
from .information import RewardInformation as RewardInformation
from .information import SensorInformation as SensorInformation
from .loop import RunSummary as RunSummary
from .loop import run_in_process as run_in_process
from .loop import run_in_process_sync as run_in_process_sync
from .termination import EnvironmentTerminationCondition as EnvironmentTerminationCondition
from .termination import MaxEpisodesTerminationCondition as MaxEpisodesTerminationCondition
from .termination import PhaseProgress as PhaseProgress
from .termination import StepOutcome as StepOutcome
from .termination import TerminationCondition as TerminationCondition
from .termination import (
    VanillaRunGovernorTerminationCondition as VanillaRunGovernorTerminationCondition,
)
