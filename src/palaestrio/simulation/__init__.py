"""The step loop that runs an experiment run in one process, and palaestrio's built-in
example components.

The component base classes live in `palaestrio.components`; they are re-exported here,
where palaestrio has always offered them (experiment files name
`palaestrio.simulation:DummyBrain` and the like).
"""

from ..components import ActuatorInformation as ActuatorInformation
from ..components import Brain as Brain
from ..components import Environment as Environment
from ..components import EnvironmentBaseline as EnvironmentBaseline
from ..components import EnvironmentState as EnvironmentState
from ..components import EnvironmentStateTransformer as EnvironmentStateTransformer
from ..components import EnvironmentTerminationCondition as EnvironmentTerminationCondition
from ..components import MaxEpisodesTerminationCondition as MaxEpisodesTerminationCondition
from ..components import Memory as Memory
from ..components import MemoryRow as MemoryRow
from ..components import Mode as Mode
from ..components import Muscle as Muscle
from ..components import Objective as Objective
from ..components import PhaseProgress as PhaseProgress
from ..components import Reward as Reward
from ..components import RewardInformation as RewardInformation
from ..components import SensorInformation as SensorInformation
from ..components import SimulationController as SimulationController
from ..components import StepOutcome as StepOutcome
from ..components import TakingTurnsSimulationController as TakingTurnsSimulationController
from ..components import TerminationCondition as TerminationCondition
from ..components import (
    VanillaRunGovernorTerminationCondition as VanillaRunGovernorTerminationCondition,
)
from ..components import VanillaSimulationController as VanillaSimulationController
from .dummies import DummyBrain as DummyBrain
from .dummies import DummyEnvironment as DummyEnvironment
from .dummies import DummyMuscle as DummyMuscle
from .dummies import DummyObjective as DummyObjective
from .errors import ComponentError as ComponentError
from .errors import SensorActuatorMismatchError as SensorActuatorMismatchError
from .loop import RunSummary as RunSummary
from .loop import run_in_process as run_in_process
from .loop import run_in_process_sync as run_in_process_sync
