"""The README's library example runs as written (in a fresh process, on the bundled example)."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "src" / "palaestrio" / "examples" / "dummy_experiment.yml"


def readme_python_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no python block under '## {heading}'"
    return match.group(1)


def test_readme_library_example_runs(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "experiment.yml")
    script = tmp_path / "example.py"
    script.write_text(readme_python_block("Library use"))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": finished, 50 steps"), result.stdout
    with sqlite3.connect(tmp_path / "runs.db") as db:
        (status,) = db.execute("SELECT status FROM experiment_run_instances").fetchone()
    assert status == "finished"
