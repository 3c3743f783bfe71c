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


def make_run(directory: Path, store_uri: str, uid: str = RUN_UID) -> None:
    """One finished run: 2 agents, 2 episodes of 12 steps, on `store_uri`."""
    run_file = write_experiment(directory, uid, max_iter=STEPS, episodes=EPISODES, agents=AGENTS)
    result = invoke("experiment-start", run_file, "--store", store_uri)
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)


_OWNERS = {"world_states": "environments", "muscle_actions": "agents"}
_KEYS = {"world_states": "environment_id", "muscle_actions": "agent_id"}


def of_run(engine: sa.Engine, table: str, what: str, run_uid: str = RUN_UID) -> float:
    """`what` (an SQL aggregate) over `table`'s rows of run `run_uid`'s instance."""
    sql = f"""
        SELECT {what} FROM {table} t
        JOIN {_OWNERS[table]} o ON o.id = t.{_KEYS[table]}
        JOIN experiment_run_phases p ON p.id = o.experiment_run_phase_id
        JOIN experiment_run_instances i ON i.id = p.experiment_run_instance_id
        JOIN experiment_runs r ON r.id = i.experiment_run_id
        WHERE r.uid = :run"""
    with engine.connect() as connection:
        return float(connection.execute(sa.text(sql), {"run": run_uid}).scalar_one())
