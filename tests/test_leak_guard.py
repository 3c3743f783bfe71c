"""The leak guard's negative controls: processes that hide well are still found."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import GUARD
from palaestrio import proctree

HERE = Path(__file__).parent

# Double fork, new session, a governor's title (which overwrites its environ) and an
# empty environment: nothing about it points back to the test that started it.
HIDDEN = """
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
import setproctitle
setproctitle.setproctitle("palaestrio[governor:hidden]")
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
time.sleep(60)
"""


def start_hidden_process(pid_file: Path) -> int:
    subprocess.run(
        [sys.executable, "-c", HIDDEN, str(pid_file)],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(sys.path)},
        check=True,
        timeout=30,
    )
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the hidden process did not start"
        time.sleep(0.01)
    return int(pid_file.read_text())


def test_guard_finds_a_double_forked_retitled_process_without_environment(
    tmp_path: Path,
) -> None:
    before = GUARD.snapshot()
    pid = start_hidden_process(tmp_path / "pid")
    try:
        assert Path(f"/proc/{pid}/environ").read_bytes().find(b"PALAESTRIO_TEST_TAG") == -1
        found = GUARD.leftovers(before)
        assert pid in [p for p, _ in found], found
        assert "palaestrio[governor:hidden]" in dict(found)[pid]
    finally:
        proctree.kill([pid])
        GUARD.reap_zombies()
    assert GUARD.leftovers(before) == []


LEAKING_TEST = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
from test_leak_guard import start_hidden_process

def test_leaks(tmp_path):
    start_hidden_process(tmp_path / "pid")

def test_does_not_leak():
    pass
"""


@pytest.mark.timeout(120)
def test_the_autouse_guard_fails_a_test_that_leaks(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((HERE / "conftest.py").read_text())
    pytester.makepyfile(leak_guard=(HERE / "leak_guard.py").read_text())
    pytester.makepyfile(test_inner=LEAKING_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*processes left behind by this test*governor:hidden*"])
