"""A submitted run file: validated as `experiment-start` validates files, every problem
returned at once (422), the file's name used only as a label."""

from __future__ import annotations

import re
import warnings

from starlette.responses import JSONResponse

from palaestrio.experiment import (
    ExperimentFileWarning,
    ExperimentRun,
    Problem,
    load_experiment_run_text,
)


def validated(text: str, source: str) -> tuple[ExperimentRun, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExperimentFileWarning)
        run = load_experiment_run_text(text, source)
    return run, [str(w.message) for w in caught if issubclass(w.category, ExperimentFileWarning)]


def problems_response(problems: list[Problem]) -> JSONResponse:
    listed = [
        {"source": p.source, "place": p.place, "line": p.line, "message": p.message}
        for p in problems
    ]
    count = len(listed)
    detail = f"{count} problem{'s' if count != 1 else ''} in the file"
    return JSONResponse({"detail": detail, "problems": listed}, status_code=422)


def label(name: str) -> str:
    """An uploaded file's name, only as a label in messages (never a path)."""
    return re.sub(r"[^\w. -]+", "_", name.rsplit("/", 1)[-1])[:100] or "upload.yml"
