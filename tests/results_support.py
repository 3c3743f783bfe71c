"""A real run for the results tests: the executor through `experiment-start` on a store,
and what the store holds, counted by SQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from click.testing import Result

from cli_support import cli_runner
from executor_support import write_experiment
from palaestrio.cli import cli

RUN_UID = "results-run"
EPISODES = 2
STEPS = 12
AGENTS = 2


def invoke(*args: str | Path) -> Result:
    return cli_runner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def make_run(directory: Path, store_uri: str) -> None:
    """One finished run: 2 agents, 2 episodes of 12 steps, on `store_uri`."""
    run_file = write_experiment(
        directory, RUN_UID, max_iter=STEPS, episodes=EPISODES, agents=AGENTS
    )
    result = invoke("experiment-start", run_file, "--store", store_uri)
    assert result.exit_code == 0, result.output + result.stderr


def scalar(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(sql)).scalar_one())
