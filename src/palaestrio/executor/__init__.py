"""The executor: one trio nursery supervising the broker, the store and the RunGovernors.

Modules, one job each: `facade` (Executor, open_executor), `services` (broker, store,
executor service under one bounded shield), `scheduler` (intake and order),
`supervisor` (one run: the error boundary, graceful stop, then the launcher's kill),
`statuses` (the one writer of run statuses), `launch` (Launcher, LocalLauncher),
`signals`, `options`, `runs`, `errors`.
"""

from __future__ import annotations

from palaestrio.executor.errors import ExecutorError as ExecutorError
from palaestrio.executor.errors import ExecutorInterrupted as ExecutorInterrupted
from palaestrio.executor.errors import UnknownRunError as UnknownRunError
from palaestrio.executor.facade import DEFAULT_STORE_URI as DEFAULT_STORE_URI
from palaestrio.executor.facade import Executor as Executor
from palaestrio.executor.facade import open_executor as open_executor
from palaestrio.executor.launch import Child as Child
from palaestrio.executor.launch import ChildExit as ChildExit
from palaestrio.executor.launch import Launcher as Launcher
from palaestrio.executor.launch import LocalLauncher as LocalLauncher
from palaestrio.executor.options import ExecutorOptions as ExecutorOptions
from palaestrio.executor.runs import ExecutorState as ExecutorState
from palaestrio.executor.runs import (
    ExperimentRunRuntimeInformation as ExperimentRunRuntimeInformation,
)
from palaestrio.executor.runs import final_attempts as final_attempts
from palaestrio.executor.statuses import UpdateCallback as UpdateCallback
