"""Steps per second of `run_in_process` with a null sink.

One DummyEnvironment (10 sensors, 10 actuators), two agents (5 + 5) with the dummy
brain, muscle and objective, 10,000 steps. Prints the median of several runs for:
episodes of 10 steps (DummyEnvironment's default, so per-episode work is included)
and of 10,000 steps, each with the default yield interval and with a trio checkpoint
after every step. Target: >= 20,000 steps/s. Besides the wall clock it reports steps
per second of the process's CPU time, which other load on the machine distorts less.
"""

from __future__ import annotations

import os
import statistics
import time

import trio

from palaestrio.experiment import load_experiment_run_text
from palaestrio.records import NullSink
from palaestrio.simulation import run_in_process

STEPS = 10_000
REPEATS = 7

RUN = """
uid: benchmark
seed: 1
version: "3.5"
schedule:
  - bench:
      environments:
        - environment:
            name: palaestrio.simulation:DummyEnvironment
            uid: env
            params: {{max_iter: {max_iter}}}
      agents:
        - name: a
          brain: {{name: palaestrio.simulation:DummyBrain}}
          muscle: {{name: palaestrio.simulation:DummyMuscle}}
          objective: {{name: palaestrio.simulation:DummyObjective}}
          sensors: [env.0, env.1, env.2, env.3, env.4]
          actuators: [env.0, env.1, env.2, env.3, env.4]
        - name: b
          brain: {{name: palaestrio.simulation:DummyBrain}}
          muscle: {{name: palaestrio.simulation:DummyMuscle}}
          objective: {{name: palaestrio.simulation:DummyObjective}}
          sensors: [env.5, env.6, env.7, env.8, env.9]
          actuators: [env.5, env.6, env.7, env.8, env.9]
      simulation: {{name: palaestrio.simulation:VanillaSimulationController}}
      phase_config: {{mode: train, worker: 1, episodes: {episodes}}}
run_config:
  condition: {{name: palaestrio.simulation:VanillaRunGovernorTerminationCondition}}
"""


def steps_per_second(episode_length: int, yield_interval: float | None) -> tuple[float, ...]:
    """Steps/s over REPEATS runs: median and best by the wall clock, and median by this
    process's CPU time (which other processes on the machine distort less)."""
    text = RUN.format(max_iter=episode_length, episodes=STEPS // episode_length)
    run = load_experiment_run_text(text, "benchmark")

    async def once() -> tuple[float, float]:
        options = {} if yield_interval is None else {"yield_interval": yield_interval}
        wall, cpu = time.perf_counter(), time.process_time()
        summary = await run_in_process(run, NullSink(), **options)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert summary.steps == STEPS, summary
        return summary.steps / wall, summary.steps / cpu

    trio.run(once)  # warm-up: imports, caches
    rates = [trio.run(once) for _ in range(REPEATS)]
    walls = [rate[0] for rate in rates]
    return statistics.median(walls), max(walls), statistics.median(rate[1] for rate in rates)


def main() -> None:
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"run_in_process, null sink, {STEPS} steps, {REPEATS} runs each")
    print(f"{os.cpu_count()} CPUs, load average {load} (other processes slow the wall clock)")
    print(
        f"{'episode length':>14} {'trio checkpoint':>21} "
        f"{'wall: median':>13} {'best':>7} {'CPU: median':>12}  (steps/s)"
    )
    for episode_length in (10, STEPS):
        for label, interval in (("every 1 ms (default)", None), ("every step", 0.0)):
            median, best, cpu = steps_per_second(episode_length, interval)
            print(f"{episode_length:>14} {label:>21} {median:>13,.0f} {best:>7,.0f} {cpu:>12,.0f}")


if __name__ == "__main__":
    main()
