"""Headline numbers for the table `nox -s bench` prints last (issue 15).

A benchmark calls `record(key, value)` for each of its headline numbers; with
PALAESTRIO_BENCH_RESULTS naming a file, each becomes a JSON line there (with the load
average when it was measured), which `_table.py` reads. Without it, nothing is written.
"""

from __future__ import annotations

import json
import os
import time

RESULTS_VARIABLE = "PALAESTRIO_BENCH_RESULTS"


def record(key: str, value: float, **extra: object) -> None:
    path = os.environ.get(RESULTS_VARIABLE)
    if not path:
        return
    line = {"key": key, "value": value, "load": os.getloadavg(), "time": time.time(), **extra}
    with open(path, "a") as file:
        file.write(json.dumps(line) + "\n")
