"""Tidy tables written row batch by row batch: CSV (stdlib) or Parquet (pyarrow, the
`parquet` extra). Each file is written under a `.partial` name and renamed when
complete, so an export that fails leaves no file that looks whole."""

from __future__ import annotations

import csv
import datetime
import os
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec

from .extras import require

Kind = Literal["text", "int", "number", "bool", "timestamp", "json"]
"""A column's type: `json` holds any value as JSON text."""

Row = tuple[Any, ...]

_encode = msgspec.json.Encoder().encode


def kind_of(value: Any) -> Kind:
    """The kind of column a value fits best."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "json"


def fits(kind: Kind, value: Any) -> bool:
    return value is None or kind == "json" or kind_of(value) == kind


def cell(kind: Kind, value: Any) -> Any:
    """`value` as the column's cell: JSON text for `json` columns, else itself."""
    if kind == "json" and value is not None:
        return _encode(value).decode()
    return value


class TableWriter(Protocol):
    rows: int

    def write(self, rows: list[Row]) -> None: ...

    def finish(self) -> None:
        """Completes the file (renames it into place)."""

    def abandon(self) -> None:
        """Removes the partial file."""


class _Partial:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.rows = 0

    def _done(self) -> None:
        os.replace(self.partial, self.path)

    def abandon(self) -> None:
        self.partial.unlink(missing_ok=True)


class CsvTable(_Partial):
    """A header line, then one line per row: empty cells for missing values, walltimes
    as ISO 8601 with their UTC offset (`pandas.read_csv(..., parse_dates=["walltime"])`)."""

    def __init__(self, path: Path, columns: list[tuple[str, Kind]]) -> None:
        super().__init__(path)
        self._file = self.partial.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow([name for name, _kind in columns])
        self._timestamps = [i for i, (_name, kind) in enumerate(columns) if kind == "timestamp"]

    def write(self, rows: list[Row]) -> None:
        if self._timestamps:
            rows = [self._iso(row) for row in rows]
        self._csv.writerows(rows)
        self.rows += len(rows)

    def _iso(self, row: Row) -> Row:
        cells = list(row)
        for index in self._timestamps:
            value: datetime.datetime | None = cells[index]
            cells[index] = None if value is None else value.isoformat()
        return tuple(cells)

    def finish(self) -> None:
        self._file.close()
        self._done()

    def abandon(self) -> None:
        self._file.close()
        super().abandon()


class ParquetTable(_Partial):
    """One row group per batch written, typed columns (JSON ones as strings)."""

    def __init__(self, path: Path, columns: list[tuple[str, Kind]]) -> None:
        super().__init__(path)
        self._pa = pa = require("pyarrow", "parquet", "Parquet export")
        parquet = require("pyarrow.parquet", "parquet", "Parquet export")
        types = {
            "text": pa.string(),
            "json": pa.string(),
            "int": pa.int64(),
            "number": pa.float64(),
            "bool": pa.bool_(),
            "timestamp": pa.timestamp("us", tz="UTC"),
        }
        self._schema = pa.schema([(name, types[kind]) for name, kind in columns])
        self._writer = parquet.ParquetWriter(str(self.partial), self._schema)

    def write(self, rows: list[Row]) -> None:
        if not rows:
            return
        arrays = [
            self._pa.array([row[index] for row in rows], type=field.type)
            for index, field in enumerate(self._schema)
        ]
        self._writer.write_batch(self._pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        self.rows += len(rows)

    def finish(self) -> None:
        self._writer.close()
        self._done()

    def abandon(self) -> None:
        self._writer.close()
        super().abandon()


Format = Literal["csv", "parquet"]


def open_table(path: Path, columns: list[tuple[str, Kind]], format: Format) -> TableWriter:
    """A writer for `path` + the format's suffix."""
    if format == "parquet":
        return ParquetTable(path.with_suffix(".parquet"), columns)
    return CsvTable(path.with_suffix(".csv"), columns)
