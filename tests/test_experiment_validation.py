"""Every kind of problem in an experiment file is reported with its place (and line)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from palaestrio.experiment import (
    ExperimentFileError,
    Problem,
    load_experiment_run_text,
    load_experiment_runs,
)
from palaestrio.records import BrainLoad

DATA = Path(__file__).parent / "data" / "experiments"
BASE: dict[str, Any] = yaml.safe_load((DATA / "base.yml").read_text())
PHASE = "schedule[0].phase_0"


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def phase(document: dict[str, Any], index: int = 0) -> dict[str, Any]:
    (settings,) = document["schedule"][index].values()
    return settings  # type: ignore[no-any-return]


def problems_of(document: dict[str, Any] | str) -> list[Problem]:
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment_run_text(text, "test.yml")
    return caught.value.problems


def only_problem(document: dict[str, Any] | str) -> Problem:
    problems = problems_of(document)
    assert len(problems) == 1, problems
    return problems[0]


def test_the_base_file_is_valid() -> None:
    run = load_experiment_run_text(yaml.safe_dump(base()), "base.yml")
    assert [agent.name for agent in run.phases[0].agents] == ["first", "second"]


def test_yaml_syntax_error_names_its_line() -> None:
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment_runs(DATA / "syntax_error.yml")
    (problem,) = caught.value.problems
    assert problem.message.startswith("YAML syntax:")
    assert problem.line == 7
    assert "syntax_error.yml:7" in str(caught.value)


def test_unknown_key() -> None:
    document = base()
    phase(document)["agents"][1]["colour"] = "red"
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.agents[1].colour"
    assert problem.message.startswith("unknown key 'colour'; expected one of: actuators, brain")


def test_missing_key() -> None:
    document = base()
    del phase(document)["agents"][0]["muscle"]
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.agents[0].muscle"
    assert problem.message == "missing key 'muscle'"


def test_missing_top_level_key() -> None:
    document = base()
    del document["seed"]
    problem = only_problem(document)
    assert (problem.place, problem.message) == ("seed", "missing key 'seed'")


def test_wrong_type() -> None:
    document = base()
    document["seed"] = "five"
    phase(document)["phase_config"]["worker"] = 1.5
    problems = problems_of(document)
    assert [(p.place, p.message) for p in problems] == [
        ("seed", "expected an integer, found a string ('five')"),
        (f"{PHASE}.phase_config.worker", "expected an integer, found a number (1.5)"),
    ]


def test_module_that_does_not_exist() -> None:
    document = base()
    phase(document)["agents"][0]["brain"]["name"] = "palaestrio.no_such_module:Brain"
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.agents[0].brain.name"
    assert problem.message == "module 'palaestrio.no_such_module' not found"


def test_class_that_does_not_exist_suggests_the_near_one() -> None:
    document = base()
    phase(document)["agents"][0]["brain"]["name"] = "palaestrio.simulation:DumyBrain"
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.agents[0].brain.name"
    assert problem.message == (
        "'palaestrio.simulation' has no class 'DumyBrain' (did you mean 'DummyBrain'?)"
    )


def test_module_that_does_not_exist_suggests_the_near_one() -> None:
    document = base()
    phase(document)["agents"][0]["brain"]["name"] = "palaestrio.simulaton:DummyBrain"
    problem = only_problem(document)
    assert problem.message == (
        "module 'palaestrio.simulaton' not found (did you mean 'palaestrio.simulation'?)"
    )


def test_name_that_is_not_module_colon_class() -> None:
    document = base()
    phase(document)["agents"][0]["objective"]["name"] = "DummyObjective"
    problem = only_problem(document)
    assert problem.message == "expected 'module:Class', found 'DummyObjective'"


def test_class_of_the_wrong_kind() -> None:
    document = base()
    phase(document)["agents"][1]["brain"]["name"] = "palaestrio.simulation:DummyMuscle"
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.agents[1].brain.name"
    assert problem.message == (
        "palaestrio.simulation.dummies.DummyMuscle is a muscle, expected a brain "
        "(a subclass of palaestrio.Brain)"
    )


def test_abstract_class() -> None:
    document = base()
    phase(document)["environments"][0]["environment"]["name"] = "palaestrio.simulation:Environment"
    problem = only_problem(document)
    assert problem.message == (
        "Environment is abstract (does not implement start_environment, update)"
    )


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("palaestrai.agent.none_brain:NoneBrain", ""),
        ("palaestrai_renamed:DummyBrain", ""),
        (
            "palaestrai.agent:DumyBrain",
            " (or did you mean 'palaestrai.agent:DummyBrain', which palaestrio has built in?)",
        ),
    ],
)
def test_palaestrai_class_without_palaestrai_installed_names_the_extra(
    name: str, hint: str, tmp_path: Path
) -> None:
    """Without the extra (simulated by blocking the import in a fresh interpreter), a
    palaestrAI class, named directly or through a module that imports palaestrAI, gets
    the class and the extra in the message; a misspelled name of a palaestrAI class
    palaestrio has built in, the built-in too."""
    document = base()
    phase(document)["agents"][0]["brain"]["name"] = name
    path = tmp_path / "run.yml"
    path.write_text(yaml.safe_dump(document))
    script = (
        "import sys; sys.modules['palaestrai'] = None\n"
        "from palaestrio.experiment import load_experiment_runs\n"
        f"load_experiment_runs({str(path)!r})\n"
    )
    tests = str(Path(__file__).parent)
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": tests},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"{name!r} needs palaestrAI, which is not installed" in result.stderr
    assert f"pip install 'palaestrio[palaestrai]'{hint}\n" in result.stderr


def test_params_that_do_not_bind_to_the_constructor() -> None:
    document = base()
    phase(document)["agents"][1]["muscle"]["params"] = {"count_upward": True}
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.agents[1].muscle.params"
    assert problem.message == (
        "params do not fit DummyMuscle(count_upwards=False): "
        "got an unexpected keyword argument 'count_upward'"
    )


def test_environment_params_must_not_set_uid_or_seed() -> None:
    document = base()
    phase(document)["environments"][0]["environment"]["params"]["seed"] = 3
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.environments[0].environment.params"
    assert problem.message == "params must not set seed (palaestrio passes it)"


def test_params_that_are_not_plain_data() -> None:
    document = base()
    phase(document)["agents"][0]["objective"]["params"] = {"params": {"since": "DATE"}}
    text = yaml.safe_dump(document, sort_keys=False).replace("since: DATE", "since: 2024-05-01")
    problem = only_problem(text)
    assert problem.place == f"{PHASE}.agents[0].objective.params.params.since"
    assert problem.message.startswith("a date (datetime.date(2024, 5, 1)) cannot be a parameter")


def test_unknown_mode() -> None:
    document = base()
    phase(document)["phase_config"]["mode"] = "evaluate"
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.phase_config.mode"
    assert problem.message == "unknown mode 'evaluate'; expected train or test"


def test_missing_environment_uid() -> None:
    document = base()
    del phase(document)["environments"][0]["environment"]["uid"]
    problems = problems_of(document)
    assert problems[0].place == f"{PHASE}.environments[0].environment.uid"
    assert problems[0].message == "missing key 'uid'"


def test_duplicate_environment_uid() -> None:
    document = base()
    environments = phase(document)["environments"]
    environments.append(copy.deepcopy(environments[0]))
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.environments[1].environment.uid"
    assert problem.message == (
        f"environment uid 'env' is already used at {PHASE}.environments[0].environment.uid"
    )


def test_duplicate_agent_names() -> None:
    document = base()
    phase(document)["agents"][1]["name"] = "first"
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.agents[1].name"
    assert problem.message == f"agent name 'first' is already used at {PHASE}.agents[0].name"


def test_sensor_that_names_no_environment() -> None:
    document = base()
    phase(document)["agents"][0]["sensors"][2] = "envv.2"
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.agents[0].sensors[2]"
    assert problem.message == (
        "sensor 'envv.2' belongs to no environment of phase 'phase_0'; "
        "ids are '<environment uid>.<id>' with uids 'env'"
    )


def test_episodes_missing_after_cascading() -> None:
    document = base()
    del phase(document)["phase_config"]["episodes"]
    document["schedule"].append({"phase_1": {"phase_config": {"mode": "test"}}})
    problems = problems_of(document)
    assert [(p.place, p.message) for p in problems] == [
        (f"{PHASE}.phase_config.episodes", "missing key 'episodes'"),
        (
            "schedule[1].phase_1.phase_config.episodes",
            "missing key 'episodes' (not set in this phase nor inherited from an earlier one)",
        ),
    ]


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("agent", "filters", [{"name": "x:Y", "params": {}}]),
        ("phase_config", "evaluate_every", 5),
        ("phase_config", "store_raw_actuators", True),
    ],
)
def test_keys_not_supported_yet(where: str, key: str, value: object) -> None:
    document = base()
    if where == "agent":
        phase(document)["agents"][0][key] = value
        place = f"{PHASE}.agents[0].{key}"
    else:
        phase(document)["phase_config"][key] = value
        place = f"{PHASE}.phase_config.{key}"
    problem = only_problem(document)
    assert (problem.place, problem.message) == (
        place,
        f"'{key}' is not supported yet by palaestrio",
    )


def test_replay_with_entries_is_not_supported_yet() -> None:
    document = base()
    phase(document)["agents"][0]["replay"] = [{"phase": 0}]
    problem = only_problem(document)
    assert (problem.place, problem.message) == (
        f"{PHASE}.agents[0].replay",
        "replaying stored actions ('replay' with entries) is not supported yet",
    )


def test_empty_replay_and_load_as_arsenai_writes_them() -> None:
    document = base()
    agents = phase(document)["agents"]
    agents[0]["replay"] = []
    agents[0]["load"] = {"agent": "other", "experiment_run": "earlier", "phase": 1}
    agents[1]["load"] = {"agent": None, "experiment_run": None, "phase": None}
    run = load_experiment_run_text(yaml.safe_dump(document))
    first, second = run.phases[0].agents[:2]
    assert first.load == BrainLoad("other", "earlier", 1)
    assert second.load is None


def test_load_with_palaestrai_replay_selectors() -> None:
    """palaestrAI 3.5's schema allows these in `load:`; its agents load the brain named
    by agent, experiment_run and phase alone, and so does palaestrio."""
    document = base()
    phase(document)["agents"][0]["load"] = {
        "agent": "other",
        "experiment_run": "earlier",
        "phase": 0,
        "instance": "abc",
        "mode": "train",
        "strict": True,
        "repeat": 2,
        "sensors": ["env.s1"],
        "actuators": None,
    }
    run = load_experiment_run_text(yaml.safe_dump(document))
    assert run.phases[0].agents[0].load == BrainLoad("other", "earlier", 0)


@pytest.mark.parametrize(
    ("load", "message"),
    [
        ({"phase": -1}, "must be at least 0, found -1"),
        (
            {"agents": "x"},
            "unknown key 'agents'; expected one of: actuators, agent, experiment_run,"
            " instance, mode, phase, repeat, sensors, strict",
        ),
        ({"strict": "yes"}, "expected true or false, found a string ('yes')"),
        ({"repeat": 0}, "must be at least 1, found 0"),
        ({"sensors": []}, "expected at least one entry, found an empty list"),
        ({"actuators": ["a", "a"]}, "'actuators' names an id twice"),
        ("x", "expected a mapping, found a string ('x')"),
    ],
)
def test_bad_load(load: object, message: str) -> None:
    document = base()
    phase(document)["agents"][0]["load"] = load
    assert only_problem(document).message == message


def test_duplicate_yaml_key() -> None:
    text = (DATA / "base.yml").read_text().replace("seed: 5\n", "seed: 5\nseed: 6\n")
    problem = only_problem(text)
    assert (problem.place, problem.line, problem.message) == ("seed", 4, "duplicate key 'seed'")


def test_empty_file() -> None:
    problem = only_problem("# nothing here\n")
    assert problem.message == "the file holds no experiment run"


def test_three_different_errors_are_reported_together() -> None:
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment_runs(DATA / "three_errors.yml")
    problems = caught.value.problems
    assert [(p.place, p.line) for p in problems] == [
        (f"{PHASE}.agents[0].brain.name", 13),
        (f"{PHASE}.agents[0].muscle.params", 14),
        (f"{PHASE}.phase_config.mode", 21),
    ]
    assert "did you mean 'DummyBrain'" in problems[0].message
    assert "unexpected keyword argument 'count_upward'" in problems[1].message
    assert problems[2].message == "unknown mode 'training'; expected train or test"
    text = str(caught.value)
    assert text.startswith("3 problems in experiment file(s):")
    assert f"three_errors.yml:13: {PHASE}.agents[0].brain.name: " in text
    assert f"three_errors.yml:21: {PHASE}.phase_config.mode: unknown mode" in text


def test_a_problem_in_an_inherited_value_is_reported_once_where_it_was_written() -> None:
    document = base()
    phase(document)["agents"][0]["brain"]["name"] = "palaestrio.simulation:DumyBrain"
    document["schedule"].append({"phase_1": {"phase_config": {"mode": "test"}}})
    document["schedule"].append({"phase_2": None})
    problem = only_problem(document)
    assert problem.place == f"{PHASE}.agents[0].brain.name"


def test_problems_of_several_files_in_a_directory_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text((DATA / "three_errors.yml").read_text())
    (tmp_path / "b.yaml").write_text((DATA / "syntax_error.yml").read_text())
    (tmp_path / "notes.txt").write_text("not an experiment")
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment_runs(tmp_path)
    sources = [Path(problem.source).name for problem in caught.value.problems]
    assert sources == ["a.yml", "a.yml", "a.yml", "b.yaml"]


def test_a_missing_file() -> None:
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment_runs(DATA / "no_such_file.yml")
    (problem,) = caught.value.problems
    assert problem.message == "cannot read the file: No such file or directory"


def test_the_error_is_a_value_error() -> None:
    assert issubclass(ExperimentFileError, ValueError)
