"""Two executors (or `database-create`s) on one fresh SQLite file at the same moment:
both succeed, neither says "database is locked" (issue 16, item 5)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

CREATE = """
import sys, time
from pathlib import Path
from palaestrio.store.engine import create_database
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
create_database(sys.argv[1])
"""


@pytest.mark.timeout(120)
def test_stores_created_at_once_on_one_fresh_sqlite_file_all_succeed(tmp_path: Path) -> None:
    for round_ in range(5):
        uri = f"sqlite:///{tmp_path}/fresh-{round_}.db"
        go = tmp_path / f"go-{round_}"
        creators = [
            subprocess.Popen([sys.executable, "-c", CREATE, uri, str(go)], stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        time.sleep(1.5)  # every creator imported and waits for the go
        go.touch()
        for creator in creators:
            _, stderr = creator.communicate(timeout=60)
            assert creator.returncode == 0, stderr.decode()
