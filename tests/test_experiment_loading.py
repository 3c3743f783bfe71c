"""Loading experiment files: palaestrAI's shape and names, cascading, and the run's
journey to another process as msgpack."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import msgspec
import pytest
import yaml

from palaestrio.components.kinds import kind_problem
from palaestrio.components.names import import_class
from palaestrio.experiment import (
    PALAESTRAI_ALIASES,
    ExperimentFileWarning,
    ExperimentRun,
    load_experiment_run_text,
    load_experiment_runs,
)

DATA = Path(__file__).parent / "data" / "experiments"
EXAMPLE = resources.files("palaestrio") / "examples" / "dummy_experiment.yml"


def test_the_bundled_example_uses_palaestrai_names_and_loads() -> None:
    settings = [line for line in EXAMPLE.read_text().splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "palaestrio:" in line or "palaestrio." in line]
    (run,) = load_experiment_runs(str(EXAMPLE))
    assert run.uid == "Yo-ho, a dummy experiment run for me!"
    assert [(p.name, p.mode, p.workers, p.episodes) for p in run.phases] == [
        ("phase_train", "train", 1, 3),
        ("phase_test", "test", 1, 2),
    ]
    test_phase = run.phases[1]
    assert test_phase.environments[0].environment.name == "palaestrio.simulation:DummyEnvironment"
    assert [a.brain.name for a in test_phase.agents] == ["palaestrio.simulation:DummyBrain"] * 2
    assert test_phase.simulation.name == "palaestrio.simulation:VanillaSimulationController"
    assert [c.name for c in test_phase.conditions] == [
        "palaestrio.simulation:EnvironmentTerminationCondition"
    ]
    assert run.run_condition.name == "palaestrio.simulation:VanillaRunGovernorTerminationCondition"
    assert run.source == str(Path(str(EXAMPLE)).resolve())


def test_cascading_keeps_worker_and_episodes_as_palaestrai_docs_promise() -> None:
    with pytest.warns(ExperimentFileWarning, match=r"docs_cascade.yml:5: version 3.4 is a number"):
        (run,) = load_experiment_runs(DATA / "docs_cascade.yml")
    first, second = run.phases
    assert (first.mode, first.workers, first.episodes) == ("train", 2, 3)
    assert (second.mode, second.workers, second.episodes) == ("test", 2, 3)
    assert second.agents == first.agents
    assert second.environments == first.environments
    assert second.config["phase_config"] == {"mode": "test", "worker": 2, "episodes": 3}
    assert run.version == "3.4"


def test_mappings_merge_deeply_and_lists_replace() -> None:
    document = yaml.safe_load((DATA / "base.yml").read_text())
    document["schedule"].append(
        {
            "phase_1": {
                "simulation": {"name": "palaestrio.simulation:TakingTurns"},
                "agents": [copy.deepcopy(document["schedule"][0]["phase_0"]["agents"][1])],
            }
        }
    )
    run = load_experiment_run_text(yaml.safe_dump(document), "cascade.yml")
    first, second = run.phases
    # The simulation mapping merged: new name (suffix added), conditions inherited.
    assert second.simulation.name == "palaestrio.simulation:TakingTurnsSimulationController"
    assert second.conditions == first.conditions
    # The agents list replaced the earlier one.
    assert [a.name for a in second.agents] == ["second"]


def test_palaestrai_simulation_names_with_and_without_the_suffix() -> None:
    document = yaml.safe_load((DATA / "base.yml").read_text())
    names = [
        "palaestrai.simulation:Vanilla",
        "palaestrai.simulation:VanillaSimController",
        "palaestrai.simulation:TakingTurns",
        "palaestrio.simulation:Vanilla",
        "palaestrio.simulation:TakingTurnsSimulationController",
    ]
    resolved = []
    for name in names:
        document["schedule"][0]["phase_0"]["simulation"]["name"] = name
        run = load_experiment_run_text(yaml.safe_dump(document), "names.yml")
        resolved.append(run.phases[0].simulation.name.split(":")[1])
    assert resolved == [
        "VanillaSimulationController",
        "VanillaSimulationController",
        "TakingTurnsSimulationController",
        "VanillaSimulationController",
        "TakingTurnsSimulationController",
    ]


@pytest.mark.parametrize("alias", sorted(PALAESTRAI_ALIASES))
def test_every_alias_leads_to_a_palaestrio_component(alias: str) -> None:
    target = PALAESTRAI_ALIASES[alias]
    assert target.startswith("palaestrio.simulation:")
    cls = import_class(alias)
    kinds = ["environment", "brain", "muscle", "objective", "simulation controller"]
    kinds.append("termination condition")
    assert sum(kind_problem(cls, kind) is None for kind in kinds) == 1


def test_a_run_carries_the_document_it_was_read_from(tmp_path: Path) -> None:
    """Whoever stores or shows a run uses `run.document`; nobody reads the file again."""
    (run,) = load_experiment_runs(str(EXAMPLE))
    assert run.document == EXAMPLE.read_text(encoding="utf-8")
    base = (DATA / "base.yml").read_text(encoding="utf-8")
    (tmp_path / "a.yml").write_text(base, encoding="utf-8")
    (from_directory,) = load_experiment_runs(tmp_path)
    (tmp_path / "a.yml").write_text("changed afterwards", encoding="utf-8")
    assert from_directory.document == base
    from_text = load_experiment_run_text(base, "inline")
    assert (from_text.document, from_text.source) == (base, None)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(run), type=ExperimentRun)
    assert decoded.document == run.document


def test_a_run_travels_as_msgpack() -> None:
    (run,) = load_experiment_runs(str(EXAMPLE))
    data = msgspec.msgpack.encode(run)
    assert msgspec.msgpack.decode(data, type=ExperimentRun) == run


def test_a_run_decoded_in_another_process_runs_there() -> None:
    """No pickle: the other process decodes msgpack and imports the classes by name."""
    (run,) = load_experiment_runs(str(EXAMPLE))
    program = (
        "import sys, json, msgspec\n"
        "from palaestrio.experiment import ExperimentRun\n"
        "from palaestrio.records import ListSink\n"
        "from palaestrio.simulation import run_in_process_sync\n"
        "run = msgspec.msgpack.decode(sys.stdin.buffer.read(), type=ExperimentRun)\n"
        "sink = ListSink()\n"
        "summary = run_in_process_sync(run, sink)\n"
        "print(json.dumps([msgspec.structs.asdict(summary), len(sink.records)]))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", program],
        input=msgspec.msgpack.encode(run),
        capture_output=True,
        timeout=60,
        check=True,
    )
    summary, records = json.loads(finished.stdout)
    assert summary == {"phases": 2, "episodes": 5, "steps": 50, "stopped": False}
    # 2 phases, 5 episodes, 50 steps of one environment and two agents
    assert records == 2 * 2 + 5 * 2 + 50 * (1 + 2)


def test_a_directory_loads_every_experiment_file_in_order(tmp_path: Path) -> None:
    base = (DATA / "base.yml").read_text()
    (tmp_path / "b.yml").write_text(base.replace("uid: base-run", "uid: second"))
    (tmp_path / "a.yaml").write_text(base.replace("uid: base-run", "uid: first"))
    (tmp_path / "README.md").write_text("not an experiment file")
    runs = load_experiment_runs(tmp_path)
    assert [run.uid for run in runs] == ["first", "second"]


def test_importing_the_experiment_package_stays_light() -> None:
    """Validation must report a typo fast, so gymnasium, numpy and trio load only when a
    run starts, not when palaestrio.experiment is imported or a file is checked."""
    program = (
        "import sys\n"
        "from palaestrio.experiment import load_experiment_runs\n"
        f"load_experiment_runs({str(DATA / 'base.yml')!r})\n"
        "print(sorted(m for m in ('gymnasium', 'numpy', 'trio') if m in sys.modules))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert finished.stdout.strip() == "[]"


def test_the_experiment_package_does_not_import_the_step_loop() -> None:
    """experiment (data, loading, checks) resolves names through palaestrio.components;
    the step loop (palaestrio.simulation) builds on experiment, never the other way."""
    program = (
        "import sys\n"
        "import palaestrio.experiment\n"
        "from palaestrio.experiment import checks, loader, model, schema, yamltree\n"
        "from palaestrio.experiment import PALAESTRAI_ALIASES, load_experiment_run_text\n"
        "print(sorted(m for m in sys.modules if m.startswith('palaestrio.simulation')))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert finished.stdout.strip() == "[]"
