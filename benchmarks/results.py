"""Results readers on a large run: `episode_series` (what the web page polls every
second), `runs export` and `runs plot`, on SQLite and PostgreSQL.

The store holds a 2-agent DummyEnvironment-shaped run of --steps steps (episodes of
1,000 steps) and a second, finished run of a fifth of that, written by the store's own
writer. The big run is still `running`: its last episode and phase have not ended, as
when a page polls a run that executes. The series is timed cold (the first call) and
polled with a `SeriesCache` (every later call: what the page pays each second).

    python benchmarks/results.py [--steps N] [--backend sqlite|postgresql|all]
                                 [--repeat N] [--explain]

`--explain` prints the query plans of the series queries (indexes used or not).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from palaestrio.records import Record
from palaestrio.results.series import SeriesCache, episode_series
from palaestrio.store.engine import create_database, open_database
from palaestrio.store.messages import Finished, RecordBatch, Running
from store_support import PostgresServer, find_bindir, registered_writer, run_records, scheduled

EPISODE_STEPS = 1000
SERIES_TARGET_MS = 100.0
"""p50 of one `episode_series` call on the big run: a page polling every second."""
EXPORT_TARGET_ROWS_PER_S = 50_000.0


def batches(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while chunk := list(islice(records, size)):
        yield chunk


def fill(uri: str, steps: int) -> str:
    """Writes the big run and a smaller one; returns the big run's instance uid."""
    create_database(uri)
    writer = registered_writer(uri, "bench")
    big = ""
    for fraction in (1, 5):
        instance = uuid.uuid4().hex
        big = big or instance
        run_steps = steps // fraction
        episodes = max(1, run_steps // EPISODE_STEPS)
        writer.apply(scheduled(instance, run_uid=f"bench-{instance}"))
        writer.apply(Running(instance, time.time()))
        records = list(run_records(episodes=episodes, steps=run_steps // episodes))
        if fraction == 1:  # still running: its last episode and phase have not ended
            records = records[:-2]
        for sequence, chunk in enumerate(batches(iter(records), 6000), start=1):
            writer.apply(RecordBatch(instance, sequence, chunk))
        if fraction != 1:
            writer.apply(Finished(instance, time.time()))
    writer.close()
    writer.engine.dispose()
    return big


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def explain(engine: sa.Engine, instance: str) -> None:
    """The plans of the statements `episode_series` runs, as the database reports them."""
    statements: list[tuple[str, Any]] = []

    def keep(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", keep)
    episode_series(engine, instance)
    sa.event.remove(engine, "before_cursor_execute", keep)
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        for statement, parameters in statements:
            print("  " + " ".join(statement.split())[:150])
            for row in connection.exec_driver_sql(prefix + statement, parameters):
                print("      " + str(row[-1]))


def run_backend(label: str, uri: str, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    instance = fill(uri, args.steps)
    print(f"{label}: stored {args.steps * 6 // 5} steps in {time.perf_counter() - started:.1f} s")
    engine = open_database(uri)
    try:
        cache = SeriesCache()
        (cold,) = timed(lambda: episode_series(engine, instance, cache), 1)
        series = episode_series(engine, instance)
        episodes = sum(len(a.episode) for a in series.phases[0].agents)
        seconds = sorted(timed(lambda: episode_series(engine, instance, cache), args.repeat))
        if episode_series(engine, instance, cache) != episode_series(engine, instance):
            raise SystemExit(f"{label}: the cached series differs from the uncached one")
        p50 = statistics.median(seconds) * 1000
        print(
            f"{label:<11} episode_series {args.steps} steps, {episodes} agent-episodes: "
            f"cold {cold * 1000:.0f} ms; polled p50 {p50:.1f} ms, max {seconds[-1] * 1000:.1f} ms "
            f"(target p50 <= {SERIES_TARGET_MS:.0f} ms: {verdict(p50 <= SERIES_TARGET_MS)})",
            flush=True,
        )
        if args.explain:
            explain(engine, instance)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    if args.backend in ("sqlite", "all"):
        with tempfile.TemporaryDirectory() as directory:
            run_backend("SQLite", f"sqlite:///{directory}/bench.db", args)
    if args.backend in ("postgresql", "all"):
        bindir = find_bindir()
        if bindir is None:
            print("PostgreSQL: skipped (no initdb found)")
            return
        server = PostgresServer(bindir)
        try:
            server.start()
            run_backend("PostgreSQL", server.uri("bench"), args)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
