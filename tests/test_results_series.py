"""`episode_series`: per-episode objective, reward and length, and steps/s, of a real run
(executor, governor processes) on SQLite and PostgreSQL, checked against the raw rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
import trio

from executor_support import start_executor_process, stop_process, wait_for_steps, write_experiment
from palaestrio.results.series import RunSeries, SeriesCache, bucket_width, episode_series
from palaestrio.store import open_database
from palaestrio.store.queries import UnknownRun
from results_support import AGENTS, EPISODES, RUN_UID, STEPS, make_run

pytest_plugins = ["pg"]


@pytest.fixture
def engine(tmp_path: Path, store_database: str) -> Iterator[sa.Engine]:
    make_run(tmp_path, store_database)
    engine = open_database(store_database)
    yield engine
    engine.dispose()


def raw_sums(engine: sa.Engine) -> dict[tuple[str, str, int], tuple[float, float, int]]:
    """(agent, worker, episode) -> objective sum, numeric reward sum, actions: in Python."""
    sums: dict[tuple[str, str, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT a.uid, m.rollout_worker_uid, m.episode, m.objective, m.rewards"
                " FROM muscle_actions m JOIN agents a ON a.id = m.agent_id"
            )
        )
        for agent, worker, episode, objective, rewards in rows:
            if isinstance(rewards, str):
                rewards = msgspec.json.decode(rewards)
            entry = sums[agent, worker, episode]
            entry[0] += objective
            entry[1] += sum(v for v in rewards.values() if type(v) in (int, float))
            entry[2] += 1
    return {key: (a, b, int(c)) for key, (a, b, c) in sums.items()}


async def test_series_of_a_finished_run(engine: sa.Engine) -> None:
    series = episode_series(engine, RUN_UID)
    assert series.run_uid == RUN_UID
    (phase,) = series.phases
    assert [(a.agent, a.worker) for a in phase.agents] == [
        (f"agent_{i}", "0") for i in range(AGENTS)
    ]
    expected = raw_sums(engine)
    assert len(expected) == AGENTS * EPISODES
    for agent in phase.agents:
        assert agent.episode == list(range(EPISODES))
        for index, episode in enumerate(agent.episode):
            objective, reward, actions = expected[agent.agent, agent.worker, episode]
            assert agent.objective[index] == pytest.approx(objective)
            assert agent.reward[index] == pytest.approx(reward)
            assert agent.actions[index] == actions == STEPS
        assert any(value != 0 for value in agent.reward)

    (lengths,) = phase.episode_lengths
    assert (lengths.worker, lengths.episode) == ("0", [0, 1])
    assert lengths.steps == [STEPS, STEPS]
    assert lengths.finished == [True, True]

    # Every stored step is in one throughput bucket, once.
    assert series.started is not None and series.ended is not None
    span = (series.ended - series.started).total_seconds()
    assert series.bucket_seconds == bucket_width(span)
    steps = 0.0
    for start, rate in zip(
        phase.throughput.seconds, phase.throughput.steps_per_second, strict=True
    ):
        steps += rate * min(series.bucket_seconds, max(span - start, 1e-3))
    # Within a step (the times above are rounded to microseconds, the rates are not).
    assert steps == pytest.approx(EPISODES * STEPS, abs=0.01)

    # JSON for the web page, and back.
    decoded = msgspec.json.decode(msgspec.json.encode(series), type=RunSeries)
    assert decoded == series


async def test_series_by_instance_uid_and_short_uid(engine: sa.Engine) -> None:
    by_run = episode_series(engine, RUN_UID)
    assert episode_series(engine, by_run.instance_uid) == by_run
    assert episode_series(engine, by_run.instance_uid[:8]).instance_uid == by_run.instance_uid


async def test_unknown_run_is_named(engine: sa.Engine) -> None:
    with pytest.raises(UnknownRun, match="no-such-run"):
        episode_series(engine, "no-such-run")


def test_bucket_width_keeps_buckets_few() -> None:
    assert bucket_width(0.0) == 0.25
    assert bucket_width(30.0) == 0.25
    assert bucket_width(31.0) == 0.5
    assert bucket_width(100_000.0) == 900
    assert 100 * 86400 / bucket_width(100 * 86400) <= 120


async def test_polled_while_running_equals_a_fresh_read(tmp_path: Path) -> None:
    """A page polls with one cache while the run executes: each poll equals an uncached
    read of the same moment in what is final, and the last poll equals a fresh read."""
    run_file = write_experiment(
        tmp_path,
        "polled",
        environment="executor_components:SlowEnvironment",
        environment_params="{delay: 0.004}",
        max_iter=10,
        episodes=25,
        agents=2,
    )
    cache = SeriesCache()
    partial_polls = 0
    process = await start_executor_process(tmp_path, run_file)
    try:
        with trio.fail_after(60):
            instance = await wait_for_steps(process, 1)
            engine = open_database(f"sqlite:///{tmp_path}/runs.db")
            while process.poll() is None:
                polled = episode_series(engine, instance, cache)
                lengths = polled.phases[0].episode_lengths if polled.phases else []
                finished = sum(sum(worker.finished) for worker in lengths)
                if 0 < finished < 25:
                    partial_polls += 1
                    # Finished episodes: what the cache kept equals a fresh read.
                    fresh = episode_series(engine, instance)
                    for cached_agent, fresh_agent in zip(
                        polled.phases[0].agents, fresh.phases[0].agents, strict=True
                    ):
                        assert cached_agent.episode[:finished] == fresh_agent.episode[:finished]
                        assert cached_agent.objective[:finished] == fresh_agent.objective[:finished]
                        assert cached_agent.reward[:finished] == fresh_agent.reward[:finished]
                await trio.sleep(0.03)
    finally:
        await stop_process(process)
    try:
        assert process.returncode == 0
        assert partial_polls >= 3, "the run ended before the polls saw it in progress"
        final = episode_series(engine, instance, cache)
        assert final == episode_series(engine, instance)
        assert [len(agent.episode) for agent in final.phases[0].agents] == [25, 25]
    finally:
        engine.dispose()
