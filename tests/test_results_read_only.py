"""`runs export` and `runs plot` read a store the user cannot write: a 0444 SQLite file
(as `nobody`), a PostgreSQL role with SELECT only."""

from __future__ import annotations

import csv
import io
import os
import uuid
from pathlib import Path

# Loaded as root: `nobody` cannot read the interpreter's directory here.
import pyarrow.parquet  # noqa: F401
import pytest

from palaestrio.results import export, plot, series  # noqa: F401
from palaestrio.store import open_database
from results_support import invoke, make_run, of_run
from store_support import PostgresServer
from test_cli_read_only import NOBODY, finished_run, unprivileged  # noqa: F401
from test_results_plot import assert_plot

pytest_plugins = ["pg"]


def warm_up_matplotlib() -> None:
    """Draws once as root, so the fonts (in the unreadable venv) are loaded."""
    from matplotlib.figure import Figure

    figure = Figure()
    figure.subplots().set_title("warm-up")
    figure.savefig(io.BytesIO(), format="png")


def export_and_plot(uri: str, run: str, out: Path) -> int:
    """Exports (CSV) and plots `run`; the CSV's world-state rows."""
    exported = invoke("runs", "export", run, "-o", out / "export", "--store", uri)
    assert exported.exit_code == 0, exported.output + exported.stderr
    plotted = invoke("runs", "plot", run, "-o", out / "run.png", "--store", uri)
    assert plotted.exit_code == 0, plotted.output + plotted.stderr
    assert_plot(out / "run.png")
    with (out / "export" / "world_states.csv").open(newline="") as file:
        return len(list(csv.DictReader(file)))


def test_a_read_only_sqlite_store(finished_run: Path) -> None:  # noqa: F811
    warm_up_matplotlib()
    path = finished_run / "store.db"
    before = path.read_bytes()
    path.chmod(0o444)
    if os.geteuid() == 0:
        os.chown(finished_run, NOBODY, NOBODY)  # nobody writes the results here
    with unprivileged():
        assert not os.access(path, os.W_OK, effective_ids=True)
        rows = export_and_plot("sqlite:///store.db", "colleague", finished_run)
    assert rows == 10
    assert path.read_bytes() == before


@pytest.mark.postgres
def test_a_select_only_postgresql_role(postgres_server: PostgresServer, tmp_path: Path) -> None:
    uri = postgres_server.uri()
    assert invoke("database-create", "--store", uri).exit_code == 0
    make_run(tmp_path, uri)
    role = f"reader_{uuid.uuid4().hex[:8]}"
    owner = open_database(uri)
    try:
        with owner.begin() as connection:
            connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
            connection.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        rows = export_and_plot(uri.replace("postgres@", f"{role}@"), "results-run", tmp_path)
        assert rows == of_run(owner, "world_states", "count(*)")
    finally:
        owner.dispose()
