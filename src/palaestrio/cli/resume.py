"""`experiment-start --resume`: which runs the store has finished already."""

from __future__ import annotations

import contextlib
from pathlib import Path

from rich.console import Console

from palaestrio.experiment import ExperimentRun


def skip_finished(
    runs: list[ExperimentRun], store_uri: str, console: Console
) -> list[ExperimentRun]:
    """`runs` without those whose experiment file (hash, seed included) has a `finished`
    instance in the store; says how many were skipped.

    The runs of executors that died are marked first (`reap_lost_runs`), so that a run
    a crashed executor left `running` is decided on as what it is: not finished."""
    from palaestrio.store import parse_store_uri
    from palaestrio.store.engine import describe
    from palaestrio.store.queries import finished_hashes
    from palaestrio.store.schema import document_hash

    from .runs import _open

    url = parse_store_uri(store_uri)
    if url.get_backend_name() == "sqlite" and _holds_nothing(Path(url.database or "")):
        # Missing, or made by an executor killed before it created the tables (which
        # `experiment-start` then creates): nothing has finished.
        console.print(f"resume: {describe(url)} holds no runs yet; running every run")
        return runs
    hashes = [document_hash(run.document) if run.document else None for run in runs]
    engine = _open(store_uri)
    try:
        done = finished_hashes(engine, [digest for digest in hashes if digest is not None])
    finally:
        engine.dispose()
    todo = [run for run, digest in zip(runs, hashes, strict=True) if digest not in done]
    skipped = len(runs) - len(todo)
    console.print(
        f"resume: {skipped} of {len(runs)} run(s) finished already in {describe(url)} "
        f"(skipped); running {len(todo)}",
        markup=False,
        highlight=False,
    )
    return todo


def _holds_nothing(path: Path) -> bool:
    if not path.is_file():
        return True
    import sqlite3

    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        ) as db:
            tables: int = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            return tables == 0
    except sqlite3.Error:
        return False  # opening it for real says what is wrong
