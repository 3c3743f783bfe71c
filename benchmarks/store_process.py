"""What the store as a process of its own costs at start-up: ``python benchmarks/store_process.py``.

(a) the store process alone: spawn of ``python -m palaestrio.store`` (SQLite, database
    created) until it prints ready, against a broker in this process; median of N;
(b) the trivial 10-step run end to end (as `benchmarks/executor.py` (a) measures it),
    which now waits for that process before its governor starts; median of N.

Targets: (a) <= 0.35 s, (b) <= 0.5 s (the executor benchmark's target for the run).
The numbers depend on the machine's load: print `uptime` with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def store_start(directory: Path, index: int) -> float:
    import trio

    from palaestrio.mdp import broker

    async def measure() -> float:
        async with trio.open_nursery() as nursery:
            endpoint = await nursery.start(broker.serve)
            began = time.perf_counter()
            argv = [sys.executable, "-m", "palaestrio.store", "--create", "--broker", endpoint]
            argv += ["--uri", f"sqlite:///{directory / f'store{index}.db'}"]
            process = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE, env=CHILD_ENV)
            assert process.stdout is not None
            async for chunk in process.stdout:
                if b"palaestrio store ready" in chunk:
                    break
            took = time.perf_counter() - began
            process.terminate()
            await process.wait()
            await process.stdout.aclose()
            nursery.cancel_scope.cancel()
        return took

    return trio.run(measure)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import executor as executor_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        starts = [store_start(directory, index) for index in range(args.repeat)]
        run_file = executor_benchmark.experiment(directory, "trivial", 10, 1)
        walls = []
        for index in range(args.repeat):
            result, _ = executor_benchmark.run_child([run_file], directory / f"run{index}.db")
            walls.append(float(result["wall"]))  # type: ignore[arg-type]
    rows = [
        ("(a) store process start until ready", statistics.median(starts), 0.35),
        ("(b) trivial run, wall", statistics.median(walls), 0.5),
    ]
    print(f"load average: {os.getloadavg()}")
    for name, value, target in rows:
        verdict = "met" if value <= target else "missed"
        print(f"{name:40} {value:7.3f} s  (target <= {target} s: {verdict})")


if __name__ == "__main__":
    main()
