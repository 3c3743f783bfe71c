"""Suite-wide guards: every test runs with a tag in its environment, and afterwards no
process carrying that tag (children, grandchildren, orphans) may still be alive."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TAG_VARIABLE = "PALAESTRIO_TEST_TAG"


def processes_with_tag(tag: str) -> list[tuple[int, str]]:
    """Live (non-zombie) processes other than this one whose environment holds `tag`."""
    needle = f"{TAG_VARIABLE}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            status = (entry / "stat").read_text()
            if status.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        found.append((int(entry.name), cmdline.strip()))
    return found


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[str]:
    """Fails the test if any process it started (at any depth) outlives it."""
    tag = uuid.uuid4().hex
    previous = os.environ.get(TAG_VARIABLE)
    os.environ[TAG_VARIABLE] = tag
    try:
        yield tag
    finally:
        if previous is None:
            del os.environ[TAG_VARIABLE]
        else:
            os.environ[TAG_VARIABLE] = previous
    left = processes_with_tag(tag)
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    assert not left, f"processes left behind by this test: {left}"
