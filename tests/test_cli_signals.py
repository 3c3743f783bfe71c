"""^C at any moment of the `palaestrio` program: exit 130, never a traceback
(issue 16, item 8)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
