"""hARL's SAC under palaestrAI 3.5.18 and under palaestrio: the same file through each
one's command line; wall time and CPU time (the command's whole process tree, less
distorted by other load on the machine), and the per-phase objective sums (equal).

    python benchmarks/peer/bench_harl.py --palaestrai /path/to/venv/bin/palaestrai

palaestrAI runs once, palaestrio `--repeat` times (its median counts). The palaestrAI
venv needs palaestrai==3.5.18, palaestrai-agents==3.6.2, palaestrai-environments==3.5.5
and torch; palaestrio's (this interpreter's) the same with palaestrio[palaestrai].
Times include each command's start-up and its store. Then the import cost per governor
with and without the palaestrai extra.

Measured (2 cores shared with other work): before palaestrio checked palaestrAI classes
from source, palaestrAI 115.3 s / palaestrio 14.1 s at load ~1, 131.8 s / 10.4 s at
load ~3-4 (the executor imported torch only to check the file, the governor again);
after, 116.0 s / 5.3 s (21.8x) at load 2.8-4.0; with both cores saturated by other jobs
(load 4-5, this same code taking 4x its CPU time in-process) 165.0 s / 15.3 s median
(10.8x wall, 8.7x CPU): palaestrio's work is CPU-bound, most of palaestrAI's wall time
is its processes waiting on one another. Sums equal and hARL's actor and critic files
byte-identical. At load ~3-4 palaestrAI once took 453.8 s and its sums differed
from its own earlier runs (763.308025 / 925.427663 against 801.687302 / 925.803848):
palaestrAI's result depends on timing when its processes are starved, palaestrio's does
not. Of palaestrio's time now: importing hARL (torch, pandas) in the governor about
2-3 s, torch importing torch._dynamo when hARL makes its first optimizer about 1.7 s,
the 240 steps about 1.3 s, start-up and store the rest.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
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


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the whole process tree: each process
    is waited for by its parent) of the command."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(cwd / "xdg")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up as users have it: with bytecode
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, timeout=1800)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


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
    parser.add_argument("--repeat", type=int, default=3, help="palaestrio's runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        peer = Path(temporary, "palaestrai")
        peer.mkdir()
        config = peer / "palaestrai-runtime.conf.yaml"
        config.write_text(f"store_uri: sqlite:///{peer / 'store.db'}\n")
        base = [str(args.palaestrai), "-c", str(config)]
        subprocess.run([*base, "database-create"], cwd=peer, check=True, capture_output=True)
        peer_load = os.getloadavg()[0]
        peer_wall, peer_cpu = timed([*base, "experiment-start", str(RUN_FILE)], peer)
        peer_sums = sums(peer / "store.db")
        own_runs = []
        for i in range(args.repeat):
            own = Path(temporary, f"palaestrio-{i}")
            own.mkdir()
            palaestrio = [sys.executable, "-m", "palaestrio", "experiment-start", str(RUN_FILE)]
            load = os.getloadavg()[0]
            own_runs.append((*timed(palaestrio, own), load, sums(own / "palaestrio.db")))
    own_wall = statistics.median(wall for wall, _, _, _ in own_runs)
    own_cpu = statistics.median(cpu for _, cpu, _, _ in own_runs)
    equal = all(run[3] == peer_sums for run in own_runs)
    print(f"{'':22} {'wall':>8} {'CPU':>8} {'load':>5}  per-phase objective sums")
    print(f"{'palaestrAI':22} {peer_wall:7.1f}s {peer_cpu:7.1f}s {peer_load:5.2f}  {peer_sums}")
    for i, (wall, cpu, load, found) in enumerate(own_runs):
        print(f"{f'palaestrio run {i + 1}':22} {wall:7.1f}s {cpu:7.1f}s {load:5.2f}  {found}")
    print(
        f"speed-up (palaestrio's median): wall {peer_wall / own_wall:.1f}x, "
        f"CPU {peer_cpu / own_cpu:.1f}x; sums equal: {equal}"
    )
    print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(f"{'imports per governor':42} {'seconds':>8} {'peak MiB':>9}  palaestrAI imported")
    for label, took, rss, palaestrai in import_costs():
        print(f"{label:42} {took:8.2f} {rss:9.0f}  {palaestrai}")


if __name__ == "__main__":
    main()
