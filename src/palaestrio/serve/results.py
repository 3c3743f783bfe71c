"""A run's results for the page and for download: its per-episode series (polled every
1.5 s by an open run page, so finished episodes are read once: `SeriesCache`) and the
`runs export` tables as one zip."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import threading
from pathlib import Path

import sqlalchemy as sa

from palaestrio.results.export import export_run
from palaestrio.results.series import RunSeries, SeriesCache, episode_series
from palaestrio.results.tables import Format


class UnavailableFormat(Exception):
    """An export format whose optional packages are not installed."""


class Results:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._cache = SeriesCache()
        self._lock = threading.Lock()  # the cache is read and updated from worker threads

    def series(self, run: str) -> RunSeries:
        with self._lock:
            return episode_series(self.engine, run, self._cache)

    def export_zip(self, run: str, format: Format) -> Path:
        """The run's exported tables and metadata.json, zipped in a new temporary
        directory (the caller removes ``path.parent``)."""
        if format == "parquet" and importlib.util.find_spec("pyarrow") is None:
            raise UnavailableFormat(
                "parquet needs the parquet extra: pip install palaestrio[parquet]"
            )
        directory = Path(tempfile.mkdtemp(prefix="palaestrio-export-"))
        try:
            export_run(self.engine, run, directory / "run", format)
            return Path(shutil.make_archive(str(directory / "export"), "zip", directory / "run"))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
