"""palaestrAI component classes checked from their source, never imported there
(`palaestrio.components.source_check`; the `palaestrai` extra: `nox -s tests_palaestrai`)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("palaestrai")

import palaestrai_renamed
from palaestrai_support import renamed_run
from palaestrio.components.palaestrai import palaestrai_kind
from palaestrio.components.source_check import source_class

HERE = Path(__file__).parent

CLASSES = [
    "palaestrai.agent.dummy_brain:DummyBrain",
    "palaestrai.agent.dummy_muscle:DummyMuscle",
    "palaestrai.agent.dummy_objective:DummyObjective",
    "palaestrai.environment.dummy_environment:DummyEnvironment",
    *(f"palaestrai_renamed:{name}" for name in palaestrai_renamed.__all__),
]


def _shape(signature: inspect.Signature) -> list[tuple[str, Any, bool]]:
    return [(p.name, p.kind, p.default is p.empty) for p in signature.parameters.values()]


@pytest.mark.parametrize("name", CLASSES)
def test_the_source_tells_what_importing_tells(name: str) -> None:
    module, _, attribute = name.partition(":")
    found = source_class(module, attribute)
    cls = getattr(sys.modules[module], attribute)
    assert found is not None
    assert found.kind == palaestrai_kind(cls)
    assert _shape(found.signature) == _shape(inspect.signature(cls))


DOUBTFUL = {
    "decorated": """
        import functools
        from palaestrai.agent import Brain

        @functools.total_ordering
        class Component(Brain):
            def thinking(self, muscle_id, data): ...
        """,
    "defined conditionally": """
        import os
        from palaestrai.agent import Brain

        if os.environ.get("X"):
            class Component(Brain):
                def thinking(self, muscle_id, data): ...
        """,
    "defined twice": """
        from palaestrai.agent import Brain, Muscle

        class Component(Brain):
            def thinking(self, muscle_id, data): ...

        class Component(Muscle):
            def propose_actions(self, sensors, actuators): ...
        """,
    "base through an assignment": """
        from palaestrai import agent
        Base = agent.Brain

        class Component(Base):
            def thinking(self, muscle_id, data): ...
        """,
    "base through a star import": """
        from palaestrai.agent.brain import *

        class Component(Brain):
            def thinking(self, muscle_id, data): ...
        """,
    "abstract method left": """
        from palaestrai.agent import Brain

        class Component(Brain):
            pass
        """,
    "__new__": """
        from palaestrai.agent import Brain

        class Component(Brain):
            def __new__(cls, *args, **kwargs): ...
            def thinking(self, muscle_id, data): ...
        """,
    "decorated constructor": """
        import functools
        from palaestrai.agent import Brain

        class Component(Brain):
            @functools.cache
            def __init__(self, x): ...
            def thinking(self, muscle_id, data): ...
        """,
    "a metaclass": """
        import abc
        from palaestrai.agent import Brain

        class Component(Brain, metaclass=abc.ABCMeta):
            def thinking(self, muscle_id, data): ...
        """,
    "a statement in the class body": """
        from palaestrai.agent import Brain

        class Component(Brain):
            if True:
                def thinking(self, muscle_id, data): ...
        """,
    "an import that is not installed": """
        import not_installed_anywhere
        from palaestrai.agent import Brain

        class Component(Brain):
            def thinking(self, muscle_id, data): ...
        """,
    "not a palaestrAI class": """
        class Component:
            def thinking(self, muscle_id, data): ...
        """,
}


@pytest.mark.parametrize("case", sorted(DOUBTFUL))
def test_a_doubtful_source_is_left_to_importing(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = "source_check_" + case.replace(" ", "_").strip("_")
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(DOUBTFUL[case]))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert source_class(module, "Component") is None
    plain = "from palaestrai.agent import Brain\nclass Component(Brain):\n"
    (tmp_path / "source_check_plain.py").write_text(plain + "    def thinking(self, m, d): ...\n")
    assert source_class("source_check_plain", "Component") is not None


RUN = (HERE.parent / "benchmarks" / "peer" / "harl" / "sac_random.yml").read_text()


def _check_in_a_fresh_interpreter(tmp_path: Path, text: str) -> dict[str, Any]:
    """Checks `text` as a run file; what it reported and which modules it imported."""
    path = tmp_path / "run.yml"
    path.write_text(text)
    script = textwrap.dedent(f"""
        import json, sys
        from palaestrio.experiment import ExperimentFileError, load_experiment_runs
        try:
            load_experiment_runs({str(path)!r})
            problems = []
        except ExperimentFileError as error:
            problems = [problem.message for problem in error.problems]
        imported = sorted(m for m in ("palaestrai", "palaestrai_renamed", "source_check_brain")
                          if m in sys.modules)
        print(json.dumps({{"problems": problems, "imported": imported}}))
        """)
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(tmp_path)])},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, Any] = json.loads(result.stdout)
    return found


PALAESTRAI_RUN = renamed_run("source-check", brain="BRAIN")


def test_checking_a_file_imports_neither_its_palaestrai_classes_nor_palaestrai(
    tmp_path: Path,
) -> None:
    text = PALAESTRAI_RUN.replace("BRAIN", "palaestrai_renamed:DummyBrain")
    assert _check_in_a_fresh_interpreter(tmp_path, text) == {"problems": [], "imported": []}


@pytest.mark.parametrize(
    ("brain", "params", "message"),
    [
        ("palaestrai_renamed:DumyBrain", {}, "(did you mean 'DummyBrain'?)"),
        ("palaestrai_renamed:DummyMuscle", {}, "is a muscle, expected a brain"),
        ("palaestrai_renamed:DummyBrain", {"size": 3}, "params do not fit DummyBrain()"),
        ("source_check_brain:Component", {}, "Component is abstract (does not implement"),
    ],
)
def test_what_the_source_leaves_in_doubt_is_reported_by_importing(
    brain: str, params: dict[str, Any], message: str, tmp_path: Path
) -> None:
    (tmp_path / "source_check_brain.py").write_text(
        "from palaestrai.agent import Brain\nclass Component(Brain):\n    pass\n"
    )
    text = PALAESTRAI_RUN.replace(
        "{name: BRAIN, params: {}}", f"{{name: {brain}, params: {params}}}"
    )
    found = _check_in_a_fresh_interpreter(tmp_path, text)
    assert len(found["problems"]) == 1 and message in found["problems"][0], found
