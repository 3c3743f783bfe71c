"""A stand-in for `srun` in remote-shaped tests: ``python fake_srun.py NODE ARGV...``.

Runs ARGV as a child tagged with a node name (``PALAESTRIO_FAKE_NODE`` in its
environment, so a test can kill "every process of a node") and without the lifeline a
remote governor does not have. Like srun after a node failure (scale-out.md §3.3), it
does not end when its child is SIGKILLed: it waits to be stopped, so only heartbeats can
tell the executor that the governor is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

NODE_VARIABLE = "PALAESTRIO_FAKE_NODE"


def main() -> None:
    node, argv = sys.argv[1], sys.argv[2:]
    env = dict(os.environ)
    env[NODE_VARIABLE] = node
    env.pop("PALAESTRIO_LIFELINE_FD", None)  # not passed on: a remote governor has none
    child = subprocess.Popen(argv, env=env)
    returncode = child.wait()
    if returncode == -signal.SIGKILL:
        time.sleep(600)  # srun exits (with 0) only after SlurmdTimeout
    sys.exit(returncode if returncode >= 0 else 128 - returncode)


if __name__ == "__main__":
    main()
