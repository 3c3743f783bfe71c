"""Hostile or careless experiment files: bounded time and memory, a clear problem with
file, place and line, never a traceback or a tag silently read as plain data."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from palaestrio.experiment import ExperimentFileError, load_experiment_runs
from palaestrio.experiment.loader import MAX_FILE_BYTES

HERE = Path(__file__).parent


def alias_bomb(depth: int) -> str:
    """Each level refers 9 times to the one before: 9**depth strings from 300 bytes."""
    text = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for level in range(1, depth + 1):
        text += f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n"
    return text


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment_runs(path)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.timeout(30)
def test_an_alias_bomb_is_refused_fast_and_small(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(alias_bomb(7))  # 4.8 million strings once expanded
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    problems = problems_of(path)
    assert time.monotonic() - started < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 500_000  # KiB
    assert len(problems) == 1
    assert "bomb.yml" in problems[0] and "alias bomb" in problems[0]


@pytest.mark.parametrize(
    ("text", "place", "message"),
    [
        ("uid: x\nloop: &a [*a]\n", "loop[0]", "recursive alias"),
        ("uid: x\nloop: &a {again: *a}\n", "loop.again", "recursive alias"),
        ("uid: x\nevil: !!python/object/apply:os.system [echo]\n", "evil", "unsupported YAML tag"),
        ("uid: x\nevil: !!python/name:os.system ''\n", "evil", "unsupported YAML tag"),
        ("uid: x\nodd: !custom {a: 1}\n", "odd", "unsupported YAML tag"),
    ],
)
def test_recursive_aliases_and_unknown_tags_are_problems_with_place_and_line(
    tmp_path: Path, text: str, place: str, message: str
) -> None:
    path = tmp_path / "hostile.yml"
    path.write_text(text)
    problems = problems_of(path)
    assert any(f"hostile.yml:2: {place}: " in p and message in p for p in problems), problems


def test_an_oversized_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yml"
    with path.open("w") as file:
        file.write("uid: huge\nparams:\n  profile: [")
        line = "0.5, " * 1000
        while file.tell() <= MAX_FILE_BYTES:
            file.write(line)
        file.write("0.5]\n")
    started = time.monotonic()
    (problem,) = problems_of(path)
    assert time.monotonic() - started < 1
    assert "huge.yml" in problem and "MiB" in problem
