"""What users subclass and name in experiment files: environments and their states,
rewards, state transformers, brains, muscles, objectives, simulation controllers,
termination conditions, the sensor/actuator/reward information they exchange, and how
`module:Class` names turn into classes.

Importing this package loads neither trio, numpy nor gymnasium: validating an
experiment file uses it.
"""

from .agent import Brain as Brain
from .agent import Memory as Memory
from .agent import MemoryRow as MemoryRow
from .agent import Mode as Mode
from .agent import Muscle as Muscle
from .agent import Objective as Objective
from .controllers import SimulationController as SimulationController
from .controllers import TakingTurnsSimulationController as TakingTurnsSimulationController
from .controllers import VanillaSimulationController as VanillaSimulationController
from .environment import Environment as Environment
from .environment import EnvironmentBaseline as EnvironmentBaseline
from .environment import EnvironmentState as EnvironmentState
from .environment import EnvironmentStateTransformer as EnvironmentStateTransformer
from .environment import KnownIds as KnownIds
from .environment import Reward as Reward
from .information import ActuatorInformation as ActuatorInformation
from .information import RewardInformation as RewardInformation
from .information import SensorInformation as SensorInformation
from .names import PALAESTRAI_ALIASES as PALAESTRAI_ALIASES
from .names import ComponentNameError as ComponentNameError
from .names import import_class as import_class
from .termination import EnvironmentTerminationCondition as EnvironmentTerminationCondition
from .termination import MaxEpisodesTerminationCondition as MaxEpisodesTerminationCondition
from .termination import PhaseProgress as PhaseProgress
from .termination import StepOutcome as StepOutcome
from .termination import TerminationCondition as TerminationCondition
from .termination import (
    VanillaRunGovernorTerminationCondition as VanillaRunGovernorTerminationCondition,
)
