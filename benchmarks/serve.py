"""`palaestrio serve`: API latency, live events per second, the page's size.

- list runs (``GET /api/runs``, a page of 100 and all 1,000) with 1,000 runs in the
  store (each 1 phase, 2 episodes of 5 steps), p50/p99 over sequential requests on one
  keep-alive connection;
- events delivered on one ``/api/events`` stream while 4 runs execute at once
  (``-p 4``): per second from the first `running` to the last `finished`, and per
  second of each run's own running time (target: the governors' progress rate);
- the page's first load: ``/`` and the files it loads, in KB.

    python benchmarks/serve.py [--requests N] [--steps N]

It runs a real `palaestrio serve` process (as the tests do) on a temporary SQLite store.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("PALAESTRIO_TEST_TAG", "benchmark")

from executor_support import write_experiment
from palaestrio.store import messages
from palaestrio.store.engine import create_database
from serve_support import Server, serving, sse_events
from store_support import registered_writer, run_records, scheduled

TARGETS = {
    "list p50 ms (100 of 1,000)": 50.0,
    "list p99 ms (100 of 1,000)": 200.0,
    "list p50 ms (1,000 of 1,000)": 150.0,
    "events/s per running run": 4.0,
    "page first load KB": 50.0,
}
HIGHER_IS_BETTER = {"events/s per running run"}
PROGRESS_PER_SECOND = 5
"""A governor reports progress every 0.2 s (`palaestrio.governor.run.PROGRESS_INTERVAL`):
a stream that keeps up delivers about that many events per running run and second."""


def fill_store(db: Path, runs: int) -> None:
    uri = f"sqlite:///{db}"
    create_database(uri)
    writer = registered_writer(uri)
    for index in range(runs):
        uid = uuid.uuid4().hex
        writer.apply(scheduled(uid, run_uid=f"run-{index}", experiment_uid=f"exp-{index % 10}"))
        writer.apply(messages.Running(uid, time.time()))
        records = list(run_records(episodes=2, steps=5))
        writer.apply(messages.RecordBatch(uid, 0, records))
        writer.apply(messages.Finished(uid, time.time()))
    writer.close()
    writer.engine.dispose()


def latencies(server: Server, path: str, requests: int) -> list[float]:
    connection = http.client.HTTPConnection(*server.host_port, timeout=30)
    headers = {"Authorization": f"Bearer {server.token}"}
    seconds = []
    try:
        for _ in range(requests):
            start = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            seconds.append(time.perf_counter() - start)
    finally:
        connection.close()
    return seconds


def page_bytes(server: Server) -> int:
    connection = http.client.HTTPConnection(*server.host_port, timeout=30)
    headers = {"Authorization": f"Bearer {server.token}"}

    def get(path: str) -> bytes:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, path
        return body

    try:
        index = get("/")
        assets = re.findall(rb'(?:src|href)="(/static/[^"]+)"', index)
        return len(index) + sum(len(get(asset.decode())) for asset in assets)
    finally:
        connection.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def events_per_second(directory: Path, steps: int) -> tuple[float, float]:
    """(events/s overall, events/s per second of a run running)."""
    async with serving(directory, "-p", "4") as server, trio.open_nursery() as nursery:
        send, events = trio.open_memory_channel[dict[str, Any]](100_000)
        await nursery.start(sse_events, server, send)
        files = [write_experiment(directory, f"bench{i}", max_iter=steps) for i in range(4)]
        instances = {await server.submit(file) for file in files}
        running: dict[str, float] = {}
        finished: dict[str, float] = {}
        count = 0
        async for event in events:
            uid, now = event["instance_uid"], time.perf_counter()
            if uid not in instances:
                continue
            if event["status"] == "running":
                running.setdefault(uid, now)
            if uid in running:
                count += 1
            if event["status"] == "finished":
                finished[uid] = now
                if set(finished) == instances:
                    break
        nursery.cancel_scope.cancel()
    elapsed = max(finished.values()) - min(running.values())
    run_seconds = sum(finished[uid] - running[uid] for uid in instances)
    return count / elapsed, count / run_seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--steps", type=int, default=3000, help="steps of each of the 4 runs")
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        (directory / "events").mkdir()
        started = time.perf_counter()
        await trio.to_thread.run_sync(fill_store, directory / "runs.db", 1000)
        print(f"store filled with 1,000 runs in {time.perf_counter() - started:.1f} s")
        async with serving(directory) as server:
            await trio.to_thread.run_sync(latencies, server, "/api/runs", 5)  # warm up
            page = await trio.to_thread.run_sync(latencies, server, "/api/runs", args.requests)
            whole = await trio.to_thread.run_sync(
                latencies, server, "/api/runs?limit=1000", max(20, args.requests // 5)
            )
            size = await trio.to_thread.run_sync(page_bytes, server)
        results["list p50 ms (100 of 1,000)"] = 1000 * statistics.median(page)
        results["list p99 ms (100 of 1,000)"] = 1000 * percentile(page, 0.99)
        results["list p50 ms (1,000 of 1,000)"] = 1000 * statistics.median(whole)
        results["page first load KB"] = size / 1024
        overall, per_run = await events_per_second(directory / "events", args.steps)
        results["events/s (4 runs, no target)"] = overall
        results["events/s per running run"] = per_run
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'measure':32} {'value':>9} {'target':>9}  met")
    for name, value in results.items():
        if name not in TARGETS:
            print(f"{name:32} {value:9.1f}")
            continue
        target = TARGETS[name]
        met = value >= target if name in HIGHER_IS_BETTER else value <= target
        sign = "≥" if name in HIGHER_IS_BETTER else "≤"
        print(f"{name:32} {value:9.1f} {sign}{target:8.1f}  {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    trio.run(main)
