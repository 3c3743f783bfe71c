"""hARL's SAC under palaestrAI 3.5.18 and under palaestrio: the same file through each
one's command line, one run each; wall time, and the per-phase objective sums (equal).

    python benchmarks/peer/bench_harl.py --palaestrai /path/to/venv/bin/palaestrai

The palaestrAI venv needs palaestrai==3.5.18, palaestrai-agents==3.6.2,
palaestrai-environments==3.5.5 and torch; palaestrio's (this interpreter's) the same
with palaestrio[palaestrai]. Times include each command's start-up and its store.

Measured (2 cores): palaestrAI 115.3 s, palaestrio 14.1 s at load ~1, sums equal and
hARL's actor and critic files byte-identical; at load ~3-4 palaestrAI took 453.8 s and
its sums differed from its own earlier runs (763.308025 / 925.427663 against
801.687302 / 925.803848): palaestrAI's result depends on timing when its processes are
starved, palaestrio's does not. palaestrio's time is mostly importing torch twice (the
executor's file check and the governor).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN_FILE = Path(__file__).parent / "harl" / "sac_random.yml"
SUMS = """SELECT p.number, m.episode, printf('%.6f', sum(m.objective))
          FROM muscle_actions m JOIN agents a ON a.id = m.agent_id
          JOIN experiment_run_phases p ON p.id = a.experiment_run_phase_id
          GROUP BY p.number, m.episode ORDER BY p.number, m.episode"""


def timed(argv: list[str], cwd: Path) -> float:
    env = {**os.environ, "XDG_CONFIG_HOME": str(cwd / "xdg")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up as users have it: with bytecode
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - start


def sums(database: Path) -> list[tuple[int, int, str]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(SUMS).fetchall()


IMPORTS = {
    "governor (palaestrio's own components)": [
        "palaestrio.governor.process",
        "palaestrio.simulation",
    ],
    "+ the palaestrai extra's adapters": [
        "palaestrio.components.palaestrai.agent",
        "palaestrio.components.palaestrai.environment",
    ],
    "+ this run's classes (hARL: torch)": [
        "harl.sac.brain",
        "harl.sac.muscle",
        "palaestrai_environments.random",
        "palaestrai.agent.dummy_objective",
    ],
}
MEASURE = """
import resource, sys, time
start = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
took = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(took, rss, "palaestrai" in sys.modules)
"""


def import_costs(repeat: int = 5) -> list[tuple[str, float, float, bool]]:
    """Seconds and peak MiB of each level of a governor's imports (fresh interpreters,
    the fastest of `repeat`), and whether palaestrAI got imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    costs = []
    modules: list[str] = []
    for label, more in IMPORTS.items():
        modules += more
        runs = []
        for _ in range(repeat):
            argv = [sys.executable, "-c", MEASURE, *modules]
            out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            took, rss, palaestrai = out.stdout.split()
            runs.append((float(took), float(rss), palaestrai == "True"))
        took, rss, palaestrai = min(runs)
        costs.append((label, took, rss, palaestrai))
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--palaestrai", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        peer, own = Path(temporary, "palaestrai"), Path(temporary, "palaestrio")
        peer.mkdir()
        own.mkdir()
        config = peer / "palaestrai-runtime.conf.yaml"
        config.write_text(f"store_uri: sqlite:///{peer / 'store.db'}\n")
        base = [str(args.palaestrai), "-c", str(config)]
        subprocess.run([*base, "database-create"], cwd=peer, check=True, capture_output=True)
        peer_time = timed([*base, "experiment-start", str(RUN_FILE)], peer)
        palaestrio = [sys.executable, "-m", "palaestrio", "experiment-start", str(RUN_FILE)]
        own_time = timed(palaestrio, own)
        peer_sums, own_sums = sums(peer / "store.db"), sums(own / "palaestrio.db")
    print(f"{'':12} {'wall time':>10}  per-phase objective sums")
    print(f"{'palaestrAI':12} {peer_time:9.1f}s  {peer_sums}")
    print(f"{'palaestrio':12} {own_time:9.1f}s  {own_sums}")
    print(f"speed-up {peer_time / own_time:.1f}x; sums equal: {peer_sums == own_sums}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(f"{'imports per governor':42} {'seconds':>8} {'peak MiB':>9}  palaestrAI imported")
    for label, took, rss, palaestrai in import_costs():
        print(f"{label:42} {took:8.2f} {rss:9.0f}  {palaestrai}")


if __name__ == "__main__":
    main()
