"""^C to `palaestrio experiment-start` while a palaestrAI asyncio environment steps
(issue 11: exit <= 1 s, status cancelled).

The environment is tests/palaestrai_renamed.py's `AsyncEnvironment`: palaestrAI's dummy
environment with coroutine methods and a task kept alive across episodes, as
palaestrai-mosaik's. Each repetition starts the command, waits until its progress
line shows 10 steps done (mid-episode: an episode is a million steps; earlier, the
governor may still be importing the components, which a ^C waits for), sends SIGINT
and times the exit. Needs the `palaestrai` extra (says so and stops without it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the palaestrAI-named run file

from palaestrai_support import renamed_run  # noqa: E402

STEPS = re.compile(r" (\d+)/\d+ \S+ steps")
"""Steps done, in a progress line (`..., 31/1000000 0% steps, ...`)."""
RUN = renamed_run(
    "async-cancel", environment="palaestrai_renamed:AsyncEnvironment", max_iter=1_000_000, sensors=2
)


def once(directory: Path) -> tuple[float, int, str]:
    """Seconds from SIGINT to exit, the exit status, and the run's status."""
    run_file = directory / "run.yml"
    run_file.write_text(RUN)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(HERE.parent / "tests")
    env["XDG_CONFIG_HOME"] = str(directory / "xdg")
    argv = [sys.executable, "-m", "palaestrio", "experiment-start", "--plain"]
    argv += ["--progress-interval", "0.1", str(run_file)]
    process = subprocess.Popen(
        argv, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        done = STEPS.search(line)
        if done is not None and int(done.group(1)) >= 10:
            break
    process.send_signal(signal.SIGINT)
    sent = time.perf_counter()
    process.stdout.read()
    code = process.wait(timeout=60)
    took = time.perf_counter() - sent
    with sqlite3.connect(directory / "palaestrio.db") as connection:
        (status,) = connection.execute("SELECT status FROM experiment_run_instances").fetchone()
    return took, code, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if importlib.util.find_spec("palaestrai") is None:
        print("palaestrai_async_cancel: skipped, needs pip install 'palaestrio[palaestrai]'")
        return
    results = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix=f"palaestrio-async-cancel-{i}-") as tmp:
            results.append(once(Path(tmp)))
    times = [took for took, _, _ in results]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"SIGINT -> exit, asyncio palaestrAI environment mid-episode: median "
        f"{statistics.median(times):.3f} s, max {max(times):.3f} s (target <= 1 s); "
        f"exit statuses {sorted({code for _, code, _ in results})}, "
        f"run statuses {sorted({status for _, _, status in results})}"
    )


if __name__ == "__main__":
    main()
