"""`runs export`: a run instance's world states and muscle actions as tidy tables.

Wide form, one row per step per environment (`world_states`) and per step per agent
(`muscle_actions`), with columns:

- `run`, `instance`, `phase` (number), `phase_name`, `mode`, `worker`, `episode`,
  `step`, then `environment` or `agent`, `walltime` (UTC), and the table's own
  (`simtime_ticks`, `simtime` (JSON), `done`; `objective`, `done`, `terminated`,
  `truncated`);
- one column per value: `sensor.<id>`, `setpoint.<id>`, `reward.<id>` (ids as stored,
  `<environment>.<name>`), typed after the first row of each environment or agent
  (numbers, booleans, text; lists and objects as JSON text);
- `other`: JSON of any value without a column or of another type than its column's
  (empty when none: nothing is left out).

Rows are in index order (phase, worker, environment or agent, episode, step) and
streamed from the database in batches, never the whole table in memory.
`metadata.json` has the run (`palaestrio.store.queries.RunDetails`), the phases'
agents and environments as configured, and each table's file, rows and columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa

from palaestrio.store import schema
from palaestrio.store.queries import RunDetails, run_details, utc

from .runs import RunInstance, find_instance
from .tables import Format, Kind, Row, TableWriter, cell, fits, kind_of, open_table

BATCH_ROWS = 2000
VALUE_PREFIXES = ("sensor", "setpoint", "reward")

_ws = schema.world_states
_ma = schema.muscle_actions
_environments = schema.environments
_agents = schema.agents
_phases = schema.experiment_run_phases
_decode = msgspec.json.Decoder().decode


class TableFile(msgspec.Struct, frozen=True):
    file: str
    rows: int
    columns: list[str]


class Exported(msgspec.Struct, frozen=True):
    run: RunDetails
    format: str
    world_states: TableFile
    muscle_actions: TableFile
    phases: list[dict[str, Any]]
    """Each phase's configuration as stored (agents, environments, ...)."""


_COMMON: list[tuple[str, Kind]] = [
    ("run", "text"),
    ("instance", "text"),
    ("phase", "int"),
    ("phase_name", "text"),
    ("mode", "text"),
    ("worker", "int"),
    ("episode", "int"),
    ("step", "int"),
]
WORLD_STATE_COLUMNS: list[tuple[str, Kind]] = [
    *_COMMON,
    ("environment", "text"),
    ("walltime", "timestamp"),
    ("simtime_ticks", "int"),
    ("simtime", "json"),
    ("done", "bool"),
]
MUSCLE_ACTION_COLUMNS: list[tuple[str, Kind]] = [
    *_COMMON,
    ("agent", "text"),
    ("walltime", "timestamp"),
    ("objective", "number"),
    ("done", "bool"),
    ("terminated", "bool"),
    ("truncated", "bool"),
]


def _text(column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """A JSON column as its text (decoded here with msgspec, faster than per-row json)."""
    return sa.cast(column, sa.Text)


class _Values:
    """The value columns (`sensor.<id>`, ...) of a table, and how a row's values fill them."""

    def __init__(self) -> None:
        self.kinds: dict[str, Kind] = {}
        self._index: dict[str, int] | None = None

    def learn(self, values: tuple[Any, ...]) -> None:
        for prefix, data in zip(VALUE_PREFIXES, values, strict=True):
            for key, value in (data or {}).items():
                name, kind = f"{prefix}.{key}", kind_of(value)
                known = self.kinds.setdefault(name, kind)
                if known != kind and value is not None:
                    self.kinds[name] = "json"

    def columns(self) -> list[tuple[str, Kind]]:
        return [*sorted(self.kinds.items()), ("other", "json")]

    def cells(self, values: tuple[Any, ...]) -> list[Any]:
        if self._index is None:  # learning is over
            self._index = {name: i for i, name in enumerate(sorted(self.kinds))}
        index = self._index
        cells: list[Any] = [None] * (len(index) + 1)
        other = {}
        for prefix, data in zip(VALUE_PREFIXES, values, strict=True):
            for key, value in (data or {}).items():
                name = f"{prefix}.{key}"
                position = index.get(name)
                kind = self.kinds.get(name, "json")
                if position is None or not fits(kind, value):
                    other[name] = value
                else:
                    cells[position] = cell(kind, value)
        cells[-1] = cell("json", other) if other else None
        return cells


def export_run(engine: sa.Engine, run: str, directory: Path, format: Format) -> Exported:
    """Writes `world_states`, `muscle_actions` (.csv or .parquet) and `metadata.json`
    of run instance `run` (as `run_details` resolves it) into `directory`."""
    details = run_details(engine, run)
    directory.mkdir(parents=True, exist_ok=True)
    with engine.connect() as connection:
        instance = find_instance(connection, details.run.instance_uid)
        phases = connection.execute(
            sa.select(_phases.c.id, _phases.c.number, _phases.c.uid, _phases.c.mode)
            .add_columns(_phases.c.configuration)
            .where(_phases.c.experiment_run_instance_id == instance.id)
            .order_by(_phases.c.number)
        ).all()
        by_phase = {row.id: row for row in phases}
        world_states = _world_states(
            connection, instance, by_phase, directory / "world_states", format
        )
        muscle_actions = _muscle_actions(
            connection, instance, by_phase, directory / "muscle_actions", format
        )
    exported = Exported(
        run=details,
        format=format,
        world_states=world_states,
        muscle_actions=muscle_actions,
        phases=[
            {
                "number": row.number,
                "name": row.uid,
                "mode": row.mode,
                "configuration": row.configuration,
            }
            for row in phases
        ],
    )
    (directory / "metadata.json").write_bytes(msgspec.json.format(msgspec.json.encode(exported)))
    return exported


def _prefix(instance: RunInstance, phase: Any, worker: str) -> Row:
    return (
        instance.run_uid,
        instance.instance_uid,
        phase.number,
        phase.uid,
        phase.mode,
        int(worker),
    )


def _world_states(
    connection: sa.Connection,
    instance: RunInstance,
    phases: dict[int, Any],
    path: Path,
    format: Format,
) -> TableFile:
    owners = {
        row.id: (phases[row.experiment_run_phase_id], row.worker_uid, row.uid)
        for row in connection.execute(
            sa.select(_environments).where(_environments.c.experiment_run_phase_id.in_(phases))
        )
    }
    values_of = (_text(_ws.c.state_dump), _text(_ws.c.setpoints), _text(_ws.c.rewards))
    query = sa.select(
        _ws.c.environment_id,
        _ws.c.episode,
        _ws.c.step_index,
        _ws.c.walltime,
        _ws.c.simtime_ticks,
        _text(_ws.c.simtime),
        _ws.c.done,
        *values_of,
    )
    order = (_ws.c.episode, _ws.c.step_index)
    values = _Values()
    for owner in owners:
        first = connection.execute(
            query.where(_ws.c.environment_id == owner).order_by(*order).limit(1)
        ).first()
        if first is not None:
            values.learn(tuple(_json(text) for text in first[7:]))
    rows = _stream(
        connection,
        query.where(_ws.c.environment_id.in_(owners)).order_by(_ws.c.environment_id, *order),
    )

    def tidy(row: Any) -> Row:
        phase, worker, environment = owners[row[0]]
        return (
            *_prefix(instance, phase, worker),
            row[1],
            row[2],
            environment,
            utc(row[3]),
            row[4],
            row[5],
            row[6],
            *values.cells(tuple(_json(text) for text in row[7:])),
        )

    return _write(path, [*WORLD_STATE_COLUMNS, *values.columns()], format, map(tidy, rows))


def _muscle_actions(
    connection: sa.Connection,
    instance: RunInstance,
    phases: dict[int, Any],
    path: Path,
    format: Format,
) -> TableFile:
    agents = {
        row.id: (phases[row.experiment_run_phase_id], row.uid)
        for row in connection.execute(
            sa.select(_agents.c.id, _agents.c.uid, _agents.c.experiment_run_phase_id).where(
                _agents.c.experiment_run_phase_id.in_(phases)
            )
        )
    }
    values_of = (
        _text(_ma.c.sensor_readings),
        _text(_ma.c.actuator_setpoints),
        _text(_ma.c.rewards),
    )
    query = sa.select(
        _ma.c.agent_id,
        _ma.c.rollout_worker_uid,
        _ma.c.episode,
        _ma.c.step_index,
        _ma.c.walltime,
        _ma.c.objective,
        _ma.c.done,
        _ma.c.terminated,
        _ma.c.truncated,
        *values_of,
    )
    order = (_ma.c.rollout_worker_uid, _ma.c.episode, _ma.c.step_index)
    values = _Values()
    for agent in agents:
        first = connection.execute(
            query.where(_ma.c.agent_id == agent).order_by(*order).limit(1)
        ).first()
        if first is not None:
            values.learn(tuple(_json(text) for text in first[9:]))
    rows = _stream(
        connection, query.where(_ma.c.agent_id.in_(agents)).order_by(_ma.c.agent_id, *order)
    )

    def tidy(row: Any) -> Row:
        phase, agent = agents[row[0]]
        return (
            *_prefix(instance, phase, row[1]),
            row[2],
            row[3],
            agent,
            utc(row[4]),
            row[5],
            row[6],
            row[7],
            row[8],
            *values.cells(tuple(_json(text) for text in row[9:])),
        )

    return _write(path, [*MUSCLE_ACTION_COLUMNS, *values.columns()], format, map(tidy, rows))


def _json(text: str | None) -> Any:
    return None if text is None else _decode(text)


def _stream(connection: sa.Connection, query: sa.Select[Any]) -> Iterator[Any]:
    """Rows in batches (a server-side cursor on PostgreSQL)."""
    return iter(connection.execution_options(yield_per=BATCH_ROWS).execute(query))


def _write(
    path: Path, columns: list[tuple[str, Kind]], format: Format, rows: Iterator[Row]
) -> TableFile:
    table: TableWriter = open_table(path, columns, format)
    try:
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                table.write(batch)
                batch = []
        table.write(batch)
        table.finish()
    except BaseException:
        table.abandon()
        raise
    name = path.with_suffix(".parquet" if format == "parquet" else ".csv").name
    return TableFile(file=name, rows=table.rows, columns=[name for name, _kind in columns])
