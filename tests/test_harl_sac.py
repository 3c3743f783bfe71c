"""hARL's SAC (palaestrai-agents 3.6.2, CPU torch) on palaestrai-environments 3.5.5's
continuous random environment, through the adapters: per-episode objective sums equal
to palaestrAI 3.5.18's own run of the same file (`nox -s tests_harl`).

palaestrAI's numbers were produced with palaestrai==3.5.18, palaestrai-agents==3.6.2,
palaestrai-environments==3.5.5 and torch 2.13.0 (CPU) in a venv of their own:

    palaestrai -c palaestrai-runtime.conf.yaml database-create
    palaestrai -c palaestrai-runtime.conf.yaml experiment-start \\
        benchmarks/peer/harl/sac_random.yml
    sqlite3 store.db "SELECT p.number, m.episode, printf('%.6f', sum(m.objective))
        FROM muscle_actions m JOIN agents a ON a.id = m.agent_id
        JOIN experiment_run_phases p ON p.id = a.experiment_run_phase_id
        GROUP BY p.number, m.episode"
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytest.importorskip("harl")
pytest.importorskip("palaestrai_environments")

from palaestrio.experiment import load_experiment_runs
from palaestrio.records import MuscleAction, Record
from palaestrio.simulation import run_in_process

RUN_FILE = Path(__file__).parent.parent / "benchmarks" / "peer" / "harl" / "sac_random.yml"

PALAESTRAI = {
    (0, 0): 801.687302,  # training: SAC learns from step 30 on
    (1, 0): 925.803848,  # test: the trained brain, loaded from the training phase's dump
}
"""(phase, episode) -> sum of the agent's objective, from palaestrAI 3.5.18's store."""
SUMS = """SELECT p.number, m.episode, sum(m.objective)
          FROM muscle_actions m JOIN agents a ON a.id = m.agent_id
          JOIN experiment_run_phases p ON p.id = a.experiment_run_phase_id
          GROUP BY p.number, m.episode"""


class ListSink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    async def emit(self, record: Record) -> None:
        self.records.append(record)


@pytest.mark.timeout(300)
async def test_harl_sac_gives_palaestrais_numbers(tmp_path: Path) -> None:
    (run,) = load_experiment_runs(RUN_FILE)
    sink = ListSink()
    await run_in_process(run, sink, data_path=tmp_path)
    sums: dict[tuple[int, int], float] = defaultdict(float)
    for record in sink.records:
        if isinstance(record, MuscleAction):
            sums[record.phase, record.episode] += record.objective
    assert {key: round(value, 6) for key, value in sums.items()} == PALAESTRAI
    # The test phase started from the training phase's brain (hARL's actor file).
    assert (tmp_path / "brains" / "harl-sac-random" / "0").is_dir()


@pytest.mark.timeout(300)
def test_the_file_runs_unchanged_through_experiment_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAESTRIO_")}
    env["PALAESTRIO_TEST_TAG"] = os.environ["PALAESTRIO_TEST_TAG"]
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    result = subprocess.run(
        [sys.executable, "-m", "palaestrio", "experiment-start", "--plain", str(RUN_FILE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(tmp_path / "palaestrio.db") as connection:
        sums = {
            (phase, episode): round(value, 6) for phase, episode, value in connection.execute(SUMS)
        }
    assert sums == PALAESTRAI


def test_checking_the_file_imports_neither_torch_nor_harl() -> None:
    """The executor reads hARL's classes from their source; only the governor that runs
    them imports them (and torch)."""
    script = (
        "import sys\n"
        "from palaestrio.experiment import load_experiment_runs\n"
        f"load_experiment_runs({str(RUN_FILE)!r})\n"
        "print(sorted(m for m in ('torch', 'harl', 'palaestrai', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
