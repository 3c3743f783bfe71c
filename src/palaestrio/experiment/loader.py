"""Reading experiment files: every problem of every file is reported at once."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ExperimentFileError, Problem
from .model import ExperimentRun
from .schema import build_run
from .yamltree import parse

_SUFFIXES = (".yml", ".yaml")
MAX_FILE_BYTES = 8 * 1024 * 1024
"""Larger experiment files are refused before they are parsed: run files are a few KiB,
and data belongs in files a component reads, not in parameters."""


def load_experiment_runs(path: str | os.PathLike[str]) -> list[ExperimentRun]:
    """The runs in an experiment file, or in every .yml/.yaml file of a directory.

    Everything is checked here, in the calling process, before anything runs: YAML
    syntax, keys, types, that every `module:Class` imports and is the right kind of
    component, that its `params` fit its constructor, modes, environment uids and agent
    names, and the phases after cascading. Raises `ExperimentFileError` listing every
    problem with file, place and line. Each run keeps its file's text as `document`.
    """
    location = Path(path)
    if location.is_dir():
        files = sorted(p for p in location.iterdir() if p.suffix in _SUFFIXES and p.is_file())
        if not files:
            raise ExperimentFileError(
                [Problem(str(location), "", None, "no .yml or .yaml files in this directory")]
            )
    else:
        files = [location]
    runs: list[ExperimentRun] = []
    problems: list[Problem] = []
    for file in files:
        try:
            size = file.stat().st_size
            if size > MAX_FILE_BYTES:
                problems.append(Problem(str(file), "", None, _too_large(size)))
                continue
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else str(error)
            problems.append(Problem(str(file), "", None, f"cannot read the file: {reason}"))
            continue
        run, found = _load(text, str(file), str(file.resolve()))
        problems.extend(found)
        if run is not None:
            runs.append(run)
    if problems:
        raise ExperimentFileError(problems)
    return runs


def load_experiment_run_text(text: str, source: str = "<text>") -> ExperimentRun:
    """The run in `text` (YAML); `source` names it in problems, `text` becomes the
    run's `document`. Raises `ExperimentFileError` like `load_experiment_runs`."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_FILE_BYTES:
        raise ExperimentFileError([Problem(source, "", None, _too_large(size))])
    run, problems = _load(text, source, None)
    if problems:
        raise ExperimentFileError(problems)
    assert run is not None
    return run


def _load(text: str, source: str, path: str | None) -> tuple[ExperimentRun | None, list[Problem]]:
    root, yaml_problems = parse(text)
    problems = [Problem(source, p.place, p.line, p.message) for p in yaml_problems]
    if root is None:
        if not problems:
            problems.append(Problem(source, "", None, "the file holds no experiment run"))
        return None, problems
    run, found = build_run(root, source, path, text)
    problems.extend(found)
    return (run if not problems else None), problems


def _too_large(size: int) -> str:
    return (
        f"the file has {size / 2**20:.1f} MiB, more than the {MAX_FILE_BYTES // 2**20} MiB "
        "an experiment file may have (put large data in a file a component reads)"
    )
