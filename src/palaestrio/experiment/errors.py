"""Problems found in experiment files, reported all at once."""

from __future__ import annotations

import dataclasses

from ..errors import PalaestrioError


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One problem: where (`place` such as "schedule[0].phase_0.agents[1].brain.name",
    and the 1-based `line` when the YAML parser gives one) and what."""

    source: str
    place: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return (
            f"{where}: {self.place}: {self.message}" if self.place else f"{where}: {self.message}"
        )


class ExperimentFileError(PalaestrioError, ValueError):
    """An experiment file (or several) has problems; `problems` lists every one."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in experiment file(s):\n{lines}"
        )


class ExperimentFileWarning(UserWarning):
    """Something in an experiment file that works but should be written differently."""
