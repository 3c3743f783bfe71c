"""palaestrio: palaestrAI's experiment executor on trio structured concurrency.

Everything a researcher uses is importable from here; submodules load on first use, so
`import palaestrio` stays fast (a typo in an experiment file is reported in well under
a second).
"""

from __future__ import annotations

from palaestrio._lazy import lazy_attributes

TYPE_CHECKING = False  # not from `typing`: the CLI's ^C handling waits for this import
__version__ = "0.1.0"

_WHERE = {
    "Executor": "executor",
    "ExecutorError": "executor",
    "ExecutorInterrupted": "executor",
    "ExecutorOptions": "executor",
    "PalaestrioError": "errors",
    "RunStatus": "status",
    "ExecutorState": "executor",
    "ExperimentRunRuntimeInformation": "executor",
    "UnknownRunError": "executor",
    "open_executor": "executor",
    "ExperimentFileError": "experiment",
    "ExperimentFileWarning": "experiment",
    "ExperimentRun": "experiment",
    "PhaseSpec": "experiment",
    "load_experiment_run_text": "experiment",
    "load_experiment_runs": "experiment",
    "Brain": "components",
    "Memory": "components",
    "MemoryRow": "components",
    "Mode": "components",
    "Muscle": "components",
    "Objective": "components",
    "SimulationController": "components",
    "TakingTurnsSimulationController": "components",
    "VanillaSimulationController": "components",
    "DummyBrain": "simulation",
    "DummyEnvironment": "simulation",
    "DummyMuscle": "simulation",
    "DummyObjective": "simulation",
    "Environment": "components",
    "EnvironmentBaseline": "components",
    "EnvironmentState": "components",
    "EnvironmentStateTransformer": "components",
    "Reward": "components",
    "ComponentError": "simulation",
    "SensorActuatorMismatchError": "simulation",
    "ActuatorInformation": "components",
    "RewardInformation": "components",
    "SensorInformation": "components",
    "RunSummary": "simulation",
    "run_in_process": "simulation",
    "run_in_process_sync": "simulation",
    "EnvironmentTerminationCondition": "components",
    "MaxEpisodesTerminationCondition": "components",
    "PhaseProgress": "components",
    "StepOutcome": "components",
    "TerminationCondition": "components",
    "VanillaRunGovernorTerminationCondition": "components",
    "NullSink": "records",
    "ListSink": "records",
    "RecordSink": "records",
}

__all__ = [
    "ActuatorInformation",
    "Brain",
    "ComponentError",
    "DummyBrain",
    "DummyEnvironment",
    "DummyMuscle",
    "DummyObjective",
    "Environment",
    "EnvironmentBaseline",
    "EnvironmentState",
    "EnvironmentStateTransformer",
    "EnvironmentTerminationCondition",
    "Executor",
    "ExecutorError",
    "ExecutorInterrupted",
    "ExecutorOptions",
    "ExecutorState",
    "ExperimentFileError",
    "ExperimentFileWarning",
    "ExperimentRun",
    "ExperimentRunRuntimeInformation",
    "ListSink",
    "MaxEpisodesTerminationCondition",
    "Memory",
    "MemoryRow",
    "Mode",
    "Muscle",
    "NullSink",
    "Objective",
    "PalaestrioError",
    "PhaseProgress",
    "PhaseSpec",
    "RecordSink",
    "Reward",
    "RewardInformation",
    "RunStatus",
    "RunSummary",
    "SensorActuatorMismatchError",
    "SensorInformation",
    "SimulationController",
    "StepOutcome",
    "TakingTurnsSimulationController",
    "TerminationCondition",
    "UnknownRunError",
    "VanillaRunGovernorTerminationCondition",
    "VanillaSimulationController",
    "__version__",
    "load_experiment_run_text",
    "load_experiment_runs",
    "open_executor",
    "run_in_process",
    "run_in_process_sync",
]


__getattr__ = lazy_attributes(__name__, _WHERE)


if TYPE_CHECKING:
    from palaestrio.components import ActuatorInformation as ActuatorInformation
    from palaestrio.components import Brain as Brain
    from palaestrio.components import Environment as Environment
    from palaestrio.components import EnvironmentBaseline as EnvironmentBaseline
    from palaestrio.components import EnvironmentState as EnvironmentState
    from palaestrio.components import EnvironmentStateTransformer as EnvironmentStateTransformer
    from palaestrio.components import (
        EnvironmentTerminationCondition as EnvironmentTerminationCondition,
    )
    from palaestrio.components import (
        MaxEpisodesTerminationCondition as MaxEpisodesTerminationCondition,
    )
    from palaestrio.components import Memory as Memory
    from palaestrio.components import MemoryRow as MemoryRow
    from palaestrio.components import Mode as Mode
    from palaestrio.components import Muscle as Muscle
    from palaestrio.components import Objective as Objective
    from palaestrio.components import PhaseProgress as PhaseProgress
    from palaestrio.components import Reward as Reward
    from palaestrio.components import RewardInformation as RewardInformation
    from palaestrio.components import SensorInformation as SensorInformation
    from palaestrio.components import SimulationController as SimulationController
    from palaestrio.components import StepOutcome as StepOutcome
    from palaestrio.components import (
        TakingTurnsSimulationController as TakingTurnsSimulationController,
    )
    from palaestrio.components import TerminationCondition as TerminationCondition
    from palaestrio.components import (
        VanillaRunGovernorTerminationCondition as VanillaRunGovernorTerminationCondition,
    )
    from palaestrio.components import VanillaSimulationController as VanillaSimulationController
    from palaestrio.errors import PalaestrioError as PalaestrioError
    from palaestrio.executor import Executor as Executor
    from palaestrio.executor import ExecutorError as ExecutorError
    from palaestrio.executor import ExecutorInterrupted as ExecutorInterrupted
    from palaestrio.executor import ExecutorOptions as ExecutorOptions
    from palaestrio.executor import ExecutorState as ExecutorState
    from palaestrio.executor import (
        ExperimentRunRuntimeInformation as ExperimentRunRuntimeInformation,
    )
    from palaestrio.executor import UnknownRunError as UnknownRunError
    from palaestrio.executor import open_executor as open_executor
    from palaestrio.experiment import ExperimentFileError as ExperimentFileError
    from palaestrio.experiment import ExperimentFileWarning as ExperimentFileWarning
    from palaestrio.experiment import ExperimentRun as ExperimentRun
    from palaestrio.experiment import PhaseSpec as PhaseSpec
    from palaestrio.experiment import load_experiment_run_text as load_experiment_run_text
    from palaestrio.experiment import load_experiment_runs as load_experiment_runs
    from palaestrio.records import ListSink as ListSink
    from palaestrio.records import NullSink as NullSink
    from palaestrio.records import RecordSink as RecordSink
    from palaestrio.simulation import ComponentError as ComponentError
    from palaestrio.simulation import DummyBrain as DummyBrain
    from palaestrio.simulation import DummyEnvironment as DummyEnvironment
    from palaestrio.simulation import DummyMuscle as DummyMuscle
    from palaestrio.simulation import DummyObjective as DummyObjective
    from palaestrio.simulation import RunSummary as RunSummary
    from palaestrio.simulation import SensorActuatorMismatchError as SensorActuatorMismatchError
    from palaestrio.simulation import run_in_process as run_in_process
    from palaestrio.simulation import run_in_process_sync as run_in_process_sync
    from palaestrio.status import RunStatus as RunStatus
