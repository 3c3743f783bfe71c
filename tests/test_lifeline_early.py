"""A governor or store whose executor dies while it is still importing (most of its
start) dies at once: the lifeline is held before those imports, not after."""

from __future__ import annotations

import os
import sys

import pytest
import trio

from palaestrio.governor.lifeline import EXIT_PARENT_LOST
from palaestrio.proctree import LIFELINE_VARIABLE

# Blocks the import of `module` for a minute, then runs `entry` as `python -m` would.
SLOW_IMPORT = """
import runpy, sys, time
class Slow:
    def find_spec(self, name, path, target=None):
        if name == {module!r}:
            time.sleep(60)
        return None
sys.meta_path.insert(0, Slow())
sys.argv = [{entry!r}, *sys.argv[1:]]
runpy.run_module({entry!r}, run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    ("entry", "module", "argv"),
    [
        ("palaestrio.governor", "palaestrio.governor.process", ["--broker", "ipc:///nowhere"]),
        ("palaestrio.store", "palaestrio.store.service", ["--uri", "sqlite://", "--broker", "x"]),
    ],
)
async def test_a_child_still_importing_dies_with_its_executor(
    entry: str, module: str, argv: list[str]
) -> None:
    read, write = os.pipe()
    code = SLOW_IMPORT.format(module=module, entry=entry)
    env = {**os.environ, LIFELINE_VARIABLE: str(read)}
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", code, *argv], env=env, pass_fds=(read,)
    )
    os.close(read)
    try:
        await trio.sleep(0.5)  # well into its imports
        os.close(write)  # the executor is gone
        with trio.fail_after(10):
            assert await process.wait() == EXIT_PARENT_LOST
    finally:
        process.kill()
        await process.wait()
