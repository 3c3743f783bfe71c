"""The executor end to end, median of 5 (issue 6): ``python benchmarks/executor.py``.

(a) a trivial run (1 environment, 1 agent, 10 steps), wall time from `trio.run` to its
    return, store on (SQLite);
(b) steps/s of a 1,000- and a 10,000-step run with 2 agents, store on: "stepping" is
    steps / time between the run's start response and its final report (sent once the
    store acknowledged every record: the issue's "end to end", target >= 12,000 for
    10,000 steps), "whole process" is steps / the whole `trio.run`; and the CPU time of
    governor and executor per 10,000 steps beyond a trivial run's, which other load
    on the machine distorts less than the wall clock;
(c) 4 runs with parallel_runs=4 (1,000 steps each): wall time and the peak resident
    memory of the whole process tree (executor + governors, sampled every 10 ms);
(d) SIGINT to an executor running a long run: time until the process has exited.

Every measurement runs in a fresh Python process, as a user's would, with bytecode
caching on (this machine's environment sets PYTHONDONTWRITEBYTECODE=1, which would make
every RunGovernor compile palaestrio from source: about 0.1 s a start).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _report import record

HERE = Path(__file__).resolve().parent
REPEAT = 5
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
sys.path.insert(0, str(HERE.parent / "tests"))  # run files and the slow test environment


def experiment(directory: Path, uid: str, steps: int, agents: int, slow: bool = False) -> Path:
    """The same run files the executor tests use (one environment, 5 sensors per agent)."""
    from executor_support import write_experiment

    if slow:  # long enough to interrupt: the tests' sleepy environment
        return write_experiment(
            directory, uid, environment="executor_components:SlowEnvironment", max_iter=10**6
        )
    return write_experiment(directory, uid, max_iter=steps, agents=agents)


# -- the child side: one executor run, reporting JSON on stdout -----------------------


class TracedGrowth:
    """With BENCH_TRACEMALLOC set (benchmarks/memory.py --tracemalloc): where Python
    memory grew between 10 s into the run and its end, printed to stderr."""

    def __init__(self) -> None:
        import tracemalloc

        tracemalloc.start(8)
        self.started = time.monotonic()
        self.baseline: tracemalloc.Snapshot | None = None

    def check(self) -> None:
        import tracemalloc

        if self.baseline is None and time.monotonic() - self.started > 10:
            self.baseline = tracemalloc.take_snapshot()

    def report(self) -> None:
        import tracemalloc

        if self.baseline is None:
            return
        growth = tracemalloc.take_snapshot().compare_to(self.baseline, "traceback")
        for stat in growth[:8]:
            print(
                f"{stat.size_diff / 1024:+.0f} KiB in {stat.count_diff:+} blocks", file=sys.stderr
            )
            for line in stat.traceback.format()[-6:]:
                print("    " + line, file=sys.stderr)


def child(files: list[str], db: str, parallel: int) -> None:
    import trio

    from palaestrio.executor import Executor, ExperimentRunRuntimeInformation
    from palaestrio.experiment import load_experiment_runs

    marks: dict[str, dict[str, float]] = {}
    tracing = TracedGrowth() if os.environ.get("BENCH_TRACEMALLOC") else None

    def on_update(info: ExperimentRunRuntimeInformation) -> None:
        if tracing is not None:
            tracing.check()
        mark = marks.setdefault(info.instance_uid, {})
        mark.setdefault(info.status, time.perf_counter())
        if info.status == "running" and info.steps:
            print(json.dumps({"steps": info.steps}), flush=True)

    runs = [run for file in files for run in load_experiment_runs(file)]
    executor = Executor(parallel, store_uri=f"sqlite:///{db}", on_update=on_update)
    executor.schedule(runs)
    started = time.perf_counter()
    trio.run(executor.execute)
    wall = time.perf_counter() - started
    if tracing is not None:
        tracing.report()
    infos = executor.experiment_runs()
    stepping = [
        info.steps / (marks[info.instance_uid]["finished"] - marks[info.instance_uid]["running"])
        for info in infos
        if info.status == "finished"
    ]
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    print(
        json.dumps(
            {
                "wall": wall,
                "executor_cpu": own.ru_utime + own.ru_stime,
                "governor_cpu": children.ru_utime + children.ru_stime,
                "statuses": [info.status for info in infos],
                "steps": sum(info.steps for info in infos),
                "stepping": statistics.mean(stepping) if stepping else 0.0,
            }
        ),
        flush=True,
    )


# -- the parent side ---------------------------------------------------------------


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * 4096
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run_child(files: list[Path], db: Path, parallel: int = 1) -> tuple[dict[str, object], int]:
    """One executor in a fresh process; its last JSON line and the tree's peak RSS."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(db), str(parallel), *map(str, files)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent / "tests",
        env=CHILD_ENV,
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.01):
            peak = max(peak, tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert process.stdout is not None
    last = process.stdout.read().strip().splitlines()[-1]
    process.wait()
    stop.set()
    sampler.join()
    return json.loads(last), peak


def sigint_exit(directory: Path, index: int) -> float:
    file = experiment(directory, f"long{index}", 0, 1, slow=True)
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(directory / f"long{index}.db"), "1", str(file)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent / "tests",
        env=CHILD_ENV,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if json.loads(line).get("steps", 0) >= 5:
            break
    process.send_signal(signal.SIGINT)
    sent = time.perf_counter()
    process.wait()
    took = time.perf_counter() - sent
    process.stdout.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--repeat", type=int, default=REPEAT)
    args = parser.parse_args()
    if args.child:
        db, parallel, *files = args.child
        child(files, db, int(parallel))
        return
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="palaestrio-bench-") as tmp:
        directory = Path(tmp)

        def median_of(name: str, files: list[Path], parallel: int = 1) -> list[dict[str, object]]:
            results = []
            for i in range(args.repeat):
                result, peak = run_child(files, directory / f"{name}{i}.db", parallel)
                assert all(s == "finished" for s in result["statuses"]), result  # type: ignore[attr-defined]
                result["peak_rss"] = peak
                results.append(result)
            return results

        def med(results: list[dict[str, object]], key: str) -> float:
            return statistics.median(float(r[key]) for r in results)  # type: ignore[arg-type]

        def add(name: str, value: float, text: str, op: str = "", bound: float = 0.0) -> None:
            """A row; `op` ">=" or "<=" against `bound` makes it a target, met or missed."""
            if not op:
                rows.append((name, text, ""))
                return
            met = value >= bound if op == ">=" else value <= bound
            target = f"{op} {bound:,g}: {'met' if met else 'MISSED'}"
            rows.append((name, text, target))

        trivial = median_of("trivial", [experiment(directory, "trivial", 10, 1)])
        add(
            "(a) trivial run, wall",
            med(trivial, "wall"),
            f"{med(trivial, 'wall'):.3f} s",
            "<=",
            0.5,
        )
        idle = med(trivial, "governor_cpu"), med(trivial, "executor_cpu")
        for steps, target in ((1_000, 10_000), (10_000, 12_000)):
            results = median_of(f"s{steps}", [experiment(directory, f"s{steps}", steps, 2)])
            stepping = med(results, "stepping")
            if steps == 10_000:
                spread = [r["stepping"] for r in results]
                record("e2e_10k_steps_per_second", stepping, spread=spread)
            # Start response to final report: every record is stored before the report.
            add(
                f"(b) {steps:,} steps, stepping", stepping, f"{stepping:,.0f} steps/s", ">=", target
            )
            add(f"(b) {steps:,} steps, whole process", steps / med(results, "wall"),
                f"{steps / med(results, 'wall'):,.0f} steps/s")  # fmt: skip
            # CPU seconds per 10,000 steps beyond a trivial run's (start-up): the two
            # sides overlap on two cores, so the larger one bounds the stepping rate.
            for side, start_up in zip(("governor", "executor"), idle, strict=True):
                cpu = (med(results, f"{side}_cpu") - start_up) * 10_000 / steps
                add(f"(b) {steps:,} steps, {side} CPU per 10k steps", cpu, f"{cpu:.2f} s")
        files = [experiment(directory, f"p{i}", 1_000, 2) for i in range(4)]
        parallel = median_of("parallel", files, parallel=4)
        wall = med(parallel, "wall")
        add("(c) 4 runs x 1,000 steps, parallel 4, wall", wall, f"{wall:.3f} s", "<=", 2)
        peak = med(parallel, "peak_rss") / 2**20
        add("(c) peak RSS of the process tree", peak, f"{peak:.0f} MB", "<=", 400)
        sigint = statistics.median(sigint_exit(directory, i) for i in range(args.repeat))
        add("(d) SIGINT -> exit", sigint, f"{sigint:.3f} s", "<=", 1)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    width = max(len(r[0]) for r in rows)
    print(f"{'scenario':<{width}}  {'measured':>18}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>18}  {target}")


if __name__ == "__main__":
    main()
