"""Suite-wide guard: after every test, no process it started may still be alive, at any
depth and whatever it calls itself (see `leak_guard`).

A session fixture whose processes outlive tests (the PostgreSQL server) tells `GUARD`
itself (`GUARD.allow`): a conftest hook on fixture setup would not see session fixtures,
which belong to the root directory, not to this one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from leak_guard import TAG_VARIABLE, LeakGuard, unignore_hangup
from palaestrio import proctree

pytest_plugins = ["pytester"]

GUARD = LeakGuard()
unignore_hangup()  # the programs tests start see SIGHUP's default, even under nohup


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[str]:
    """Fails the test if any process it started (at any depth) outlives it."""
    tag = uuid.uuid4().hex
    previous = os.environ.get(TAG_VARIABLE)
    os.environ[TAG_VARIABLE] = tag
    before = GUARD.snapshot()
    try:
        yield tag
    finally:
        if previous is None:
            del os.environ[TAG_VARIABLE]
        else:
            os.environ[TAG_VARIABLE] = previous
    left = GUARD.leftovers(before, tag)
    proctree.kill(pid for pid, _ in left)
    GUARD.reap_zombies()
    assert not left, f"processes left behind by this test: {left}"
