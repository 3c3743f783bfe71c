"""Records/s through the store service, on SQLite and PostgreSQL.

The stream is shaped like a 2-agent DummyEnvironment run: per step 1 world state and 2
muscle actions, each with 10 sensor values. As in palaestrio, a sender process (the
RunGovernor's `StoreSink`) sends batches through an MDP broker to the store service,
which runs with the broker in another process (the executor's) and writes in a worker
thread. Time runs from the first `emit` to the acknowledgement of the last record; the
rows are then counted to check that everything arrived exactly once.

    python benchmarks/store.py [--steps N] [--backend sqlite|postgresql|all] [--inline]
                               [--postgres-uri URI] [--max-batch N]

PostgreSQL: a throw-away server (initdb in a temporary directory, durable settings) when
its binaries are installed, or the database at --postgres-uri. `--inline` also measures
the writer called in the trio thread itself (blocking the loop), to compare with the
worker thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from palaestrio.mdp import broker
from palaestrio.mdp.client import open_client
from palaestrio.mdp.worker import serve_worker
from palaestrio.store import messages
from palaestrio.store.engine import create_database, describe, open_database
from palaestrio.store.ownership import DEFAULT_LEASE_SECONDS, register_executor
from palaestrio.store.sender import DEFAULT_MAX_BATCH, open_store_sink, send_status
from palaestrio.store.service import SERVICE, StoreService, serve
from palaestrio.store.writer import StoreWriter
from store_support import (
    PostgresServer,
    count,
    find_bindir,
    run_records,
    scheduled,
)

EPISODE_STEPS = 1000


async def sender(endpoint: str, steps: int, max_batch: int) -> None:
    """The governor side: emits a whole run's records, prints what it measured (JSON)."""
    episodes = max(1, steps // EPISODE_STEPS)
    steps_per_episode = steps // episodes
    records = list(run_records(episodes=episodes, steps=steps_per_episode))
    instance = uuid.uuid4().hex
    async with open_client(endpoint) as client:
        await send_status(client, scheduled(instance, run_uid=f"bench-{instance}"))
        async with open_store_sink(
            client, instance, max_batch=max_batch, max_pending=2 * max_batch
        ) as sink:
            started = time.perf_counter()
            for record in records:
                await sink.emit(record)
            await sink.flush()
            seconds = time.perf_counter() - started
    report = {
        "records": len(records),
        "steps": episodes * steps_per_episode,
        "seconds": seconds,
        "batches": sink.batches,
    }
    print(json.dumps(report))


async def loop_lag(worst: list[float]) -> None:
    """How late a 10 ms sleep wakes up: what a busy store costs the rest of the loop."""
    while True:
        asked = trio.current_time() + 0.01
        await trio.sleep_until(asked)
        worst[0] = max(worst[0], trio.current_time() - asked)


async def measure(uri: str, steps: int, max_batch: int, *, inline: bool) -> dict[str, float]:
    """The executor side: broker and store service here, the sender as a child process."""
    worst_lag = [0.0]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(loop_lag, worst_lag)
        endpoint = await nursery.start(broker.serve)
        if inline:
            engine = open_database(uri, immediate=True)
            register_executor(engine, "bench", DEFAULT_LEASE_SECONDS)
            service = StoreService(StoreWriter(engine, "bench"))

            async def blocking(frames: list[bytes]) -> list[bytes]:
                return [messages.encode(service.apply_frames(frames))]

            await nursery.start(partial(serve_worker, endpoint, SERVICE, blocking))
        else:
            await nursery.start(serve, uri, endpoint)
        argv = [sys.executable, __file__, "--sender", endpoint, "--steps", str(steps)]
        done = await trio.run_process([*argv, "--max-batch", str(max_batch)], capture_stdout=True)
        nursery.cancel_scope.cancel()
    result: dict[str, float] = json.loads(done.stdout)
    result["lag"] = worst_lag[0]
    return result


def run_backend(label: str, uri: str, args: argparse.Namespace) -> None:
    modes = [("thread", False), ("inline", True)] if args.inline else [("thread", False)]
    for mode, inline in modes:
        create_database(uri)
        engine = open_database(uri)
        before = count(engine, "world_states"), count(engine, "muscle_actions")
        result = trio.run(partial(measure, uri, args.steps, args.max_batch, inline=inline))
        after = count(engine, "world_states"), count(engine, "muscle_actions")
        engine.dispose()
        steps = int(result["steps"])
        if (after[0] - before[0], after[1] - before[1]) != (steps, 2 * steps):
            raise SystemExit(f"{label}: rows {after} after {before} do not match {steps} steps")
        rate = result["records"] / result["seconds"]
        print(
            f"{label:<11} {mode:<7} {steps:>7} steps {result['batches']:>5.0f} batches "
            f"{result['seconds']:7.2f} s {rate:>10,.0f} records/s "
            f"{steps / result['seconds']:>9,.0f} steps/s "
            f"(loop lag up to {result['lag'] * 1000:.0f} ms)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--postgres-uri")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
    parser.add_argument("--inline", action="store_true")
    parser.add_argument("--sender", metavar="ENDPOINT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sender:
        trio.run(sender, args.sender, args.steps, args.max_batch)
        return
    print(f"store benchmark: 2-agent DummyEnvironment stream, max_batch {args.max_batch}")
    if args.backend in ("sqlite", "all"):
        with tempfile.TemporaryDirectory() as directory:
            run_backend("SQLite", f"sqlite:///{directory}/bench.db", args)
    if args.backend in ("postgresql", "all"):
        if args.postgres_uri:
            print(f"PostgreSQL at {describe(args.postgres_uri)}")
            run_backend("PostgreSQL", args.postgres_uri, args)
            return
        bindir = find_bindir()
        if bindir is None:
            print("PostgreSQL: skipped (no initdb found; pass --postgres-uri)")
            return
        server = PostgresServer(bindir, durable=True)
        try:
            server.start()
            run_backend("PostgreSQL", server.uri("bench"), args)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
