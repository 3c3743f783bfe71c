"""Chaos suite for issue 16: `python benchmarks/chaos --iterations N --seed S`
(`nox -s chaos -- ...`).

Each iteration runs a small batch through the real CLI (`palaestrio experiment-start`
in its own session, a fresh SQLite store) and injects one or two random faults
(`plan`, `faults`), then checks the invariants (`invariants`): the executor exits in
bound, no process is left, every acknowledged record is stored exactly once, statuses
are exact, and no success is reported for lost data. One `random.Random(seed)` decides
everything; `--only K` re-runs iteration K alone. `report` prints the table.

Kept free of imports: governors import `chaos.components` by name.
"""
