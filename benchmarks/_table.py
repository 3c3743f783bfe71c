"""The table `nox -s bench` ends with: issue 15's six measures, each with the number it
had before the issue, its target, what was measured now, and met/missed.

    python benchmarks/_table.py RESULTS.jsonl [--peer PEER.json]

RESULTS.jsonl holds the headline numbers the benchmarks recorded (`_report.record`).
palaestrAI's time for the trivial run comes from PEER.json, which `nox -s bench_peer`
writes (it installs palaestrAI and takes minutes: the bench session does not run it);
without that file the table uses palaestrAI 3.5.18's time as last measured here and says
so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PALAESTRAI_TRIVIAL_SECONDS = 33.0
"""palaestrAI 3.5.18's whole `palaestrai experiment-start` of the trivial run here (bench_peer)."""


@dataclass
class Row:
    measure: str
    key: str
    """The recorded number whose load average the row shows."""
    before: str
    target: str
    measure_now: Callable[[dict[str, dict[str, object]]], tuple[str, bool] | None]


def value(results: dict[str, dict[str, object]], key: str) -> float | None:
    found = results.get(key)
    return None if found is None else float(found["value"])  # type: ignore[arg-type]


def read_results(path: Path) -> dict[str, dict[str, object]]:
    """The last value recorded for each key."""
    results: dict[str, dict[str, object]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                results[entry["key"]] = entry
    return results


def palaestrai_trivial(peer: Path | None) -> tuple[float, str]:
    if peer is not None and peer.exists():
        values = json.loads(peer.read_text()).get("trivial", {}).get("palaestrAI", [])
        measured = [v for v in values if v is not None]
        if measured:
            return statistics.median(measured), f"palaestrAI measured: {peer}"
    return PALAESTRAI_TRIVIAL_SECONDS, (
        f"palaestrAI's {PALAESTRAI_TRIVIAL_SECONDS:g} s as last measured by `nox -s bench_peer` "
        "(not run now)"
    )


def rows(peer_seconds: float) -> list[Row]:
    def trivial(r: dict[str, dict[str, object]]) -> tuple[str, bool] | None:
        ours = value(r, "trivial_cli_seconds")
        if ours is None:
            return None
        ratio = peer_seconds / ours
        return f"{ratio:.0f}x ({ours:.2f} s)", ratio >= 60

    def sweep(r: dict[str, dict[str, object]]) -> tuple[str, bool] | None:
        rate = value(r, "sweep_runs_per_second")
        return None if rate is None else (f"{rate:.1f} runs/s", rate >= 8)

    def steps(r: dict[str, dict[str, object]]) -> tuple[str, bool] | None:
        rate = value(r, "e2e_10k_steps_per_second")
        return None if rate is None else (f"{rate:,.0f} steps/s", rate >= 12_000)

    def memory(r: dict[str, dict[str, object]]) -> tuple[str, bool] | None:
        growth = r.get("memory_growth_mb")
        if growth is None:
            return None
        per_process = growth["per_process"]
        assert isinstance(per_process, dict)
        text = ", ".join(f"{name} {mb:+.1f} MB" for name, mb in per_process.items())
        return text, bool(growth["met"])

    def broker(r: dict[str, dict[str, object]]) -> tuple[str, bool] | None:
        one, many = value(r, "broker_ratio_1"), value(r, "broker_ratio_64")
        if one is None or many is None:
            return None
        return f"{one:.2f}x / {many:.2f}x", min(one, many) >= 2

    def governors(r: dict[str, dict[str, object]]) -> tuple[str, bool] | None:
        p99, lost = value(r, "governors_p99_seconds"), r.get("governors_lost")
        if p99 is None or lost is None:
            return None
        return (
            f"p99 {p99 * 1e3:.0f} ms, lost {lost['value']}/{lost['sent']}",
            p99 <= 0.050 and lost["value"] == 0,
        )

    return [
        Row(
            "trivial run, CLI whole process, vs palaestrAI 3.5.18",
            "trivial_cli_seconds",
            "~17-20x",
            ">= 60x",
            trivial,
        ),
        Row(
            "50 x 10-step runs, -p 2, CLI whole process",
            "sweep_runs_per_second",
            "3.9 runs/s",
            ">= 8 runs/s",
            sweep,
        ),
        Row(
            "10,000 steps, 2 agents, SQLite, end to end",
            "e2e_10k_steps_per_second",
            "5,400 steps/s",
            ">= 12,000",
            steps,
        ),
        Row(
            "1,000,000 steps: RSS growth after 10 s (projected)",
            "memory_growth_mb",
            "70 MB max RSS",
            "flat",
            memory,
        ),
        Row(
            "broker vs zguide reference, 1 / 64 in flight",
            "broker_ratio_1",
            "0.73x / 0.82x",
            ">= 2x",
            broker,
        ),
        Row(
            "broker, 300 governors (5 progress + 5 batches/s)",
            "governors_p99_seconds",
            "not measured",
            "p99 <= 50 ms, none lost",
            governors,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--peer", type=Path)
    args = parser.parse_args()
    results = read_results(args.results)
    peer_seconds, peer_source = palaestrai_trivial(args.peer)
    table = [("measure", "before", "target", "measured", "result", "load (1 min)")]
    for row in rows(peer_seconds):
        now = row.measure_now(results)
        entry = results.get(row.key)
        load = f"{entry['load'][0]:.2f}" if entry else ""  # type: ignore[index]
        if now is None:
            table.append((row.measure, row.before, row.target, "not run", "", ""))
        else:
            text, met = now
            table.append(
                (row.measure, row.before, row.target, text, "met" if met else "MISSED", load)
            )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    print()
    print("issue 15: " + peer_source)
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
