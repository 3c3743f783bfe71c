"""`runs export`: a real run's world states and muscle actions as CSV and Parquet, on
SQLite and PostgreSQL, read back and compared with what the store holds (counted and
summed in SQL); a second run in the store stays out."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from palaestrio.store import open_database
from results_support import AGENTS, EPISODES, RUN_UID, STEPS, invoke, make_run, of_run

pytest_plugins = ["pg"]


@pytest.fixture
def store(tmp_path: Path, store_database: str) -> Iterator[tuple[str, sa.Engine]]:
    make_run(tmp_path, store_database)
    make_run(tmp_path, store_database, uid="another-run")
    engine = open_database(store_database)
    yield store_database, engine
    engine.dispose()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def export(uri: str, directory: Path, format: str) -> None:
    result = invoke("runs", "export", RUN_UID, "-o", directory, "--format", format, "--store", uri)
    assert result.exit_code == 0, result.output + result.stderr
    assert f"{RUN_UID}" not in result.stderr


async def test_csv_rows_and_values_equal_the_store(
    store: tuple[str, sa.Engine], tmp_path: Path
) -> None:
    uri, engine = store
    export(uri, tmp_path / "csv", "csv")
    world_states = read_csv(tmp_path / "csv" / "world_states.csv")
    muscle_actions = read_csv(tmp_path / "csv" / "muscle_actions.csv")
    assert len(world_states) == of_run(engine, "world_states", "count(*)") == EPISODES * STEPS
    assert len(muscle_actions) == of_run(engine, "muscle_actions", "count(*)")
    assert len(muscle_actions) == AGENTS * EPISODES * STEPS
    assert {row["run"] for row in world_states + muscle_actions} == {RUN_UID}
    assert sum(float(row["objective"]) for row in muscle_actions) == pytest.approx(
        of_run(engine, "muscle_actions", "sum(t.objective)")
    )
    assert sum(int(row["done"] == "True") for row in world_states) == of_run(
        engine, "world_states", "sum(CASE WHEN t.done THEN 1 ELSE 0 END)"
    )
    # Values: one column each, nothing left over; index order.
    first = world_states[0]
    assert (first["phase"], first["worker"], first["episode"], first["step"]) == (
        "0",
        "0",
        "0",
        "0",
    )
    assert [int(row["step"]) for row in world_states[:STEPS]] == list(range(STEPS))
    sensors = [name for name in first if name.startswith("sensor.env.")]
    assert len(sensors) == 5 * AGENTS
    assert all(row["other"] == "" for row in world_states + muscle_actions)
    by_agent = {row["agent"] for row in muscle_actions}
    assert by_agent == {f"agent_{i}" for i in range(AGENTS)}

    metadata = json.loads((tmp_path / "csv" / "metadata.json").read_text())
    assert metadata["run"]["run"]["run_uid"] == RUN_UID
    assert metadata["world_states"]["rows"] == len(world_states)
    assert metadata["muscle_actions"]["columns"] == list(muscle_actions[0])
    assert [agent for agent in metadata["run"]["phases"][0]["agents"]] == sorted(by_agent)
    assert metadata["phases"][0]["configuration"]["phase_config"]["episodes"] == EPISODES


async def test_parquet_reads_back_typed(store: tuple[str, sa.Engine], tmp_path: Path) -> None:
    uri, engine = store
    export(uri, tmp_path / "parquet", "parquet")
    world_states = pq.read_table(tmp_path / "parquet" / "world_states.parquet")
    muscle_actions = pq.read_table(tmp_path / "parquet" / "muscle_actions.parquet")
    assert world_states.num_rows == of_run(engine, "world_states", "count(*)")
    assert muscle_actions.num_rows == of_run(engine, "muscle_actions", "count(*)")
    schema = muscle_actions.schema
    assert str(schema.field("walltime").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("step").type) == "int64"
    assert str(schema.field("sensor.env.0").type) == "double"
    assert sum(muscle_actions.column("objective").to_pylist()) == pytest.approx(
        of_run(engine, "muscle_actions", "sum(t.objective)")
    )
    assert set(muscle_actions.column("run").to_pylist()) == {RUN_UID}
    assert muscle_actions.column("other").null_count == muscle_actions.num_rows


async def test_unknown_run_is_a_clear_error(store: tuple[str, sa.Engine], tmp_path: Path) -> None:
    uri, _engine = store
    result = invoke("runs", "export", "no-such-run", "-o", tmp_path / "out", "--store", uri)
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: the store has no run instance and no run 'no-such-run'"
    assert not (tmp_path / "out").exists()
    plotted = invoke("runs", "plot", "no-such-run", "-o", tmp_path / "p.png", "--store", uri)
    assert plotted.exit_code == 2
    assert "no run 'no-such-run'" in plotted.stderr
    assert not (tmp_path / "p.png").exists()


HIDDEN = """\
import sys
sys.modules[{module!r}] = None  # as if not installed: importing it raises ImportError
from palaestrio.cli import main
sys.argv = ["palaestrio", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(
    ("module", "command", "extra"),
    [
        ("pyarrow", ["export", "-o", "out", "--format", "parquet"], "parquet"),
        ("matplotlib", ["plot", "-o", "p.png"], "plot"),
    ],
)
def test_missing_extra_is_named(
    tmp_path: Path, module: str, command: list[str], extra: str
) -> None:
    """Before the store is looked at: this one does not even exist."""
    argv = [sys.executable, "-c", HIDDEN.format(module=module), "runs", command[0], "some-run"]
    done = subprocess.run(
        [*argv, *command[1:], "--store", f"sqlite:///{tmp_path}/none.db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("Error: "), done.stderr
    assert f"pip install 'palaestrio[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
