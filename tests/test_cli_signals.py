"""^C at any moment of the `palaestrio` program: exit 130, never a traceback
(issue 16, item 8); SIGTERM and SIGHUP likewise: 143 and 129, never "killed by"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from executor_support import write_experiment

HERE = Path(__file__).parent

# The program's own start, with the ^C arriving while its commands are still being
# imported (which takes a few tenths of a second on a real run).
EARLY = """
import os, signal, sys
sys.argv = ["palaestrio", "runs", "list", "--store", sys.argv[1]]
import palaestrio.cli as program
real = program.__getattr__
def interrupted_import(name):
    os.kill(os.getpid(), signal.SIGINT)
    return real(name)
program.__getattr__ = interrupted_import
program.main()
"""

# A ^C delivered once the command is done (the summary printed) and before exit.
LATE = """
import os, signal, sys, logging
sys.argv = ["palaestrio", "--version"]
import palaestrio.cli as program
real_shutdown = logging.shutdown
def interrupted_shutdown():
    os.kill(os.getpid(), signal.SIGINT)
    real_shutdown()
logging.shutdown = interrupted_shutdown
program.main()
"""


@pytest.mark.parametrize(("script", "code"), [(EARLY, 130), (LATE, 0)])
def test_a_sigint_before_or_after_the_command_exits_quietly(
    tmp_path: object, script: str, code: int
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{tmp_path}/none.db"],
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONFAULTHANDLER": ""},
    )
    assert done.returncode == code, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    assert b"KeyboardInterrupt" not in done.stderr


# A stop signal at three moments the executor's watcher does not cover: while the
# commands are imported, after the executor started its services but before the
# watcher (its store and a governor are up), and once it is done (the summary).
SIGNAL_EARLY = """
import os, sys
signum = int(sys.argv[1])
sys.argv = ["palaestrio", "runs", "list", "--store", sys.argv[2]]
import palaestrio.cli as program
real = program.__getattr__
def signalled_import(name):
    os.kill(os.getpid(), signum)
    return real(name)
program.__getattr__ = signalled_import
program.main()
"""

SIGNAL_BEFORE_WATCHER = """
import os, sys
signum = int(sys.argv[1])
sys.argv = ["palaestrio", "experiment-start", "--plain", "--store", sys.argv[2], sys.argv[3]]
import palaestrio.cli as program
program.__getattr__("cli")
from palaestrio.executor import facade
real = facade.watch_signals
async def signalled_watch(*args, **kwargs):
    os.kill(os.getpid(), signum)
    await real(*args, **kwargs)
facade.watch_signals = signalled_watch
program.main()
"""

SIGNAL_AT_SUMMARY = """
import os, sys
signum = int(sys.argv[1])
sys.argv = ["palaestrio", "experiment-start", "--plain", "--store", sys.argv[2], sys.argv[3]]
import palaestrio.cli as program
program.__getattr__("cli")
from palaestrio.cli import experiment
real = experiment._print_summary
def signalled_summary(*args, **kwargs):
    print("summary begins", flush=True)
    os.kill(os.getpid(), signum)
    real(*args, **kwargs)
experiment._print_summary = signalled_summary
program.main()
"""


@pytest.mark.parametrize(
    "script",
    [SIGNAL_EARLY, SIGNAL_BEFORE_WATCHER, SIGNAL_AT_SUMMARY],
    ids=["imports", "before-watcher", "summary"],
)
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_or_sighup_outside_the_executor_exits_with_its_status(
    tmp_path: Path, script: str, signum: int, code: int
) -> None:
    run = write_experiment(
        tmp_path, "run", environment="executor_components:SlowEnvironment", max_iter=5
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAESTRIO_")}
    env["PALAESTRIO_TEST_TAG"] = os.environ["PALAESTRIO_TEST_TAG"]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", script, str(signum), f"sqlite:///{tmp_path}/runs.db", str(run)],
        capture_output=True,
        timeout=90,
        cwd=tmp_path,
        env={**env, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYTHONFAULTHANDLER": ""},
    )
    assert done.returncode == code, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    if script is SIGNAL_AT_SUMMARY:
        assert b"summary begins" in done.stdout  # printed before the signal: not lost
    # The autouse guard then checks that the store and the governor followed.


# Under nohup (SIGHUP ignored when the program starts), a hangup before the executor's
# watcher and one after it has started are both ignored: the run finishes.
NOHUP = """
import os, signal, sys
signal.signal(signal.SIGHUP, signal.SIG_IGN)
sys.argv = ["palaestrio", "experiment-start", "--plain", "--store", sys.argv[2], sys.argv[3]]
import palaestrio.cli as program
program.__getattr__("cli")
from palaestrio.executor import facade
real = facade.watch_signals
class HangUpOnceStarted:
    def __init__(self, status):
        self.status = status
    def started(self, value=None):
        self.status.started(value)
        os.kill(os.getpid(), signal.SIGHUP)
async def signalled_watch(*args, task_status, **kwargs):
    os.kill(os.getpid(), signal.SIGHUP)
    await real(*args, task_status=HangUpOnceStarted(task_status), **kwargs)
facade.watch_signals = signalled_watch
program.main()
"""


def test_under_nohup_a_hangup_is_ignored(tmp_path: Path) -> None:
    run = write_experiment(
        tmp_path, "run", environment="executor_components:SlowEnvironment", max_iter=5
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAESTRIO_")}
    env["PALAESTRIO_TEST_TAG"] = os.environ["PALAESTRIO_TEST_TAG"]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", NOHUP, "1", f"sqlite:///{tmp_path}/runs.db", str(run)],
        capture_output=True,
        timeout=90,
        cwd=tmp_path,
        env={**env, "XDG_CONFIG_HOME": str(tmp_path / "xdg")},
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"finished, 5 steps" in done.stdout
