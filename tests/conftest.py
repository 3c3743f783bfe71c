"""Suite-wide guard: after every test, no process it started may still be alive, at any
depth and whatever it calls itself (see `leak_guard`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator

import pytest

from leak_guard import TAG_VARIABLE, LeakGuard
from palaestrio import proctree

pytest_plugins = ["pytester"]

GUARD = LeakGuard()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """Processes a session fixture starts (a database server) may outlive the test."""
    if fixturedef.scope != "session":
        return (yield)
    before = GUARD.snapshot()
    try:
        return (yield)
    finally:
        GUARD.allow(GUARD.snapshot() - before)


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
