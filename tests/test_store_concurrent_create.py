"""Two executors (or `database-create`s) on one fresh SQLite file at the same moment:
both succeed, neither says "database is locked" (issue 16, item 5)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from palaestrio.store.engine import SQLITE_BUSY_TIMEOUT_MS, switch_to_wal

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
        try:
            for creator in creators:
                _, stderr = creator.communicate(timeout=60)
                assert creator.returncode == 0, stderr.decode()
        finally:  # a failed round leaves no creator behind for the next test's warnings
            for creator in creators:
                creator.kill()
                creator.communicate()


@pytest.mark.timeout(60)
def test_connections_switching_one_fresh_file_to_wal_at_once_all_succeed(tmp_path: Path) -> None:
    # Each connection holds a read lock and wants the write lock: SQLite answers "locked"
    # at once (a deadlock to it), busy timeout or not. Without the retry, about 1 in 10
    # rounds of 4 failed here.
    failures: list[str] = []
    for round_ in range(100):
        path = tmp_path / f"fresh-{round_}.db"
        barrier = threading.Barrier(4)

        def switch(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                cursor = connection.cursor()
                cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                barrier.wait()
                switch_to_wal(cursor)
            except sqlite3.OperationalError as error:
                failures.append(str(error))
            finally:
                connection.close()

        threads = [threading.Thread(target=switch) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not failures
