"""Resident memory of executor, governor and store over a long run (issue 15): ``python
benchmarks/memory.py [--steps N] [--seconds S]``.

One executor process (as `benchmarks/executor.py` starts it: SQLite store, 2 agents)
runs a `--steps`-step run (default 1,000,000). Every second the RSS of the executor,
its governor and its store process is sampled. The run is stopped with SIGINT after `--seconds`
(default 120) if it has not finished: the growth rate is then projected to the whole
run. Target: flat, i.e. no growth after the first 10 s beyond `--tolerance` MB
(default 5: allocator noise, SQLite's page cache filling up to its limit), judged by
the slope of RSS over time after the first 10 s, projected over the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import record
from executor import CHILD_ENV, HERE, experiment

WARM_UP = 10.0


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def child_of(pid: int, *markers: bytes) -> int | None:
    """The child of `pid` whose command line holds one of `markers` (a RunGovernor, the
    store: `python -m palaestrio.governor` until setproctitle names it
    `palaestrio[governor:RUN]`)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and any(m in cmdline for m in markers):
            return int(entry.name)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--tolerance", type=float, default=5.0, help="MB")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="the executor prints where its Python memory grew after 10 s (slower)",
    )
    args = parser.parse_args()
    # (seconds since start, executor, governor, store)
    samples: list[tuple[float, int, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="palaestrio-memory-") as tmp:
        file = experiment(Path(tmp), "long", args.steps, 2)
        process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "executor.py"),
                "--child",
                f"{tmp}/long.db",
                "1",
                str(file),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE.parent / "tests",
            env={**CHILD_ENV, "BENCH_TRACEMALLOC": "1"} if args.tracemalloc else CHILD_ENV,
        )
        started = time.monotonic()
        governor: int | None = None
        store: int | None = None
        stopped = False
        while process.poll() is None:
            now = time.monotonic() - started
            governor = governor or child_of(
                process.pid, b"palaestrio.governor", b"palaestrio[governor"
            )
            store = store or child_of(process.pid, b"palaestrio.store", b"palaestrio[store")
            if governor is not None and store is not None and not stopped:
                samples.append((now, rss(process.pid), rss(governor), rss(store)))
            if now >= args.seconds and not stopped:
                process.send_signal(signal.SIGINT)
                stopped = True
            time.sleep(1.0)
        assert process.stdout is not None
        lines = process.stdout.read().strip().splitlines()
    steps = max((json.loads(line).get("steps", 0) for line in lines), default=0)
    report(samples, steps, args, stopped)


def report(
    samples: list[tuple[float, int, int, int]], steps: int, args: argparse.Namespace, stopped: bool
) -> None:
    late = [s for s in samples if s[0] >= WARM_UP]
    if len(late) < 2:
        # Fails the benchmark (and `nox -s bench`): no number is not a met target.
        raise SystemExit("too short to judge: fewer than 2 samples after the first 10 s")
    rate = steps / samples[-1][0]
    whole = args.steps / rate if rate else float("inf")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{steps:,} of {args.steps:,} steps in {samples[-1][0]:.0f} s"
        + (f" (stopped; the whole run would take {whole:.0f} s)" if stopped else "")
    )
    print("RSS every 10 s (executor/governor/store MB):")
    print("  " + "  ".join("/".join(f"{x / 2**20:.1f}" for x in s[1:]) for s in samples[::10]))
    # RSS wobbles by a few MB as batches come and go: growth is the slope of a
    # least-squares line through the samples after the first 10 s, projected over the
    # whole run.
    print(f"{'process':<10} {'at 10 s':>9} {'max':>9} {'MB/min':>8} {'projected':>10}  target")
    growth: dict[str, float] = {}
    for column, name in ((1, "executor"), (2, "governor"), (3, "store")):
        times = [s[0] for s in late]
        sizes = [s[column] / 2**20 for s in late]
        slope = statistics.linear_regression(times, sizes).slope
        projected = slope * (min(whole, 10 * 3600) - WARM_UP)
        growth[name] = projected
        verdict = "met" if projected <= args.tolerance else "missed"
        print(
            f"{name:<10} {sizes[0]:>7.1f}MB {max(sizes):>7.1f}MB {slope * 60:>+8.2f}"
            f" {projected:>+8.1f}MB  flat (<= {args.tolerance:g} MB growth after 10 s): {verdict}"
        )

    met = all(mb <= args.tolerance for mb in growth.values())
    record("memory_growth_mb", max(growth.values()), per_process=growth, met=met)


if __name__ == "__main__":
    main()
