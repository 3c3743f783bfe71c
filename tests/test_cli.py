"""The `palaestrio` command through click's test runner (in-process, real executor,
real governor processes, real SQLite files)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import yaml
from click.testing import Result

from cli_support import cli_runner
from executor_support import stored_rows, write_experiment
from palaestrio.cli import cli
from palaestrio.config import DEFAULT_TEXT, RuntimeConfig, load_runtime_config
from palaestrio.store import list_runs, open_database

EXAMPLE = Path(str(resources.files("palaestrio") / "examples" / "dummy_experiment.yml"))
COMPONENTS = "executor_components"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with no runtime configuration around and none in the env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for key in ("STORE_URI", "BROKER_URI", "PARALLEL_RUNS", "LOGGING"):
        monkeypatch.delenv(f"PALAESTRIO_{key}", raising=False)
    yield tmp_path


def invoke(*args: str | Path) -> Result:
    return cli_runner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def assert_clean_error(result: Result, *fragments: str) -> None:
    """Exit status 2, one message naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr


def summary_rows(output: str) -> dict[str, list[str]]:
    """The summary table's cells by instance uid (the 32-hex-digit column)."""
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        for index, cell in enumerate(cells):
            if len(cell) == 32 and all(c in "0123456789abcdef" for c in cell):
                rows[cell] = cells[index + 1 :]
    return rows


def test_bundled_example_exists() -> None:
    assert EXAMPLE.is_file()


def test_experiment_start_summary_matches_the_store(workdir: Path) -> None:
    result = invoke("experiment-start", EXAMPLE, EXAMPLE, "-p", "2")
    assert result.exit_code == 0, result.output
    engine = open_database("sqlite:///palaestrio.db")
    try:
        stored = list_runs(engine)
    finally:
        engine.dispose()
    assert len(stored) == 2
    rows = summary_rows(result.stdout)
    assert set(rows) == {run.instance_uid for run in stored}
    for run in stored:
        assert run.status == "finished"
        # 3 + 2 episodes of 10 steps.
        assert (run.episodes, run.steps) == (5, 50)
        status, episodes, steps, *_ = rows[run.instance_uid]
        assert (status, int(episodes), int(steps)) == (run.status, run.episodes, run.steps)
    assert "store: sqlite:///palaestrio.db" in result.stdout
    # Not a terminal: one line per state change, no live table.
    for run in stored:
        changes = [
            line for line in result.stdout.splitlines() if f"({run.instance_uid[:8]}): " in line
        ]
        assert [line.split(": ")[1].split(",")[0] for line in changes] == [
            "starting",
            "running",
            "finished",
        ]


def test_a_failed_run_exits_1_and_is_reported(workdir: Path) -> None:
    failing = write_experiment(
        workdir, "failing", environment=f"{COMPONENTS}:FailingEnvironment", max_iter=20
    )
    fine = write_experiment(workdir, "fine")
    result = invoke("experiment-start", failing, fine, "--store", "sqlite:///runs.db")
    assert result.exit_code == 1, result.output
    engine = open_database("sqlite:///runs.db")
    try:
        by_uid = {run.run_uid: run for run in list_runs(engine)}
    finally:
        engine.dispose()
    assert by_uid["failing"].status == "error"
    assert by_uid["fine"].status == "finished"
    rows = summary_rows(result.stdout)
    assert rows[by_uid["failing"].instance_uid][0] == "error"
    assert rows[by_uid["fine"].instance_uid][0] == "finished"
    # Why it failed is printed after the table.
    assert "fails at step 5" in result.stdout
    assert stored_rows(workdir / "runs.db", by_uid["failing"].instance_uid) == (4, 4)


def test_directory_runs_every_yaml_file(workdir: Path) -> None:
    runs_dir = workdir / "runs"
    runs_dir.mkdir()
    write_experiment(runs_dir, "one")
    write_experiment(runs_dir, "two")
    (runs_dir / "notes.txt").write_text("not a run")
    result = invoke("experiment-start", runs_dir)
    assert result.exit_code == 0, result.output
    engine = open_database("sqlite:///palaestrio.db")
    try:
        assert sorted(r.run_uid for r in list_runs(engine, status="finished")) == ["one", "two"]
    finally:
        engine.dispose()


def test_runs_list_and_show(workdir: Path) -> None:
    assert invoke("experiment-start", EXAMPLE).exit_code == 0
    engine = open_database("sqlite:///palaestrio.db")
    try:
        (run,) = list_runs(engine)
    finally:
        engine.dispose()

    listed = invoke("runs", "list")
    assert listed.exit_code == 0, listed.output
    line = next(line for line in listed.stdout.splitlines() if run.instance_uid in line)
    cells = line.split()
    assert run.status in cells
    assert cells[-2:] == ["5", "50"]
    assert run.run_uid in listed.stdout

    as_json = json.loads(invoke("runs", "list", "--json").stdout)
    assert [(r["instance_uid"], r["status"], r["steps"]) for r in as_json] == [
        (run.instance_uid, "finished", 50)
    ]
    assert json.loads(invoke("runs", "list", "--status", "error", "--json").stdout) == []

    for key in (run.instance_uid, run.run_uid):
        shown = invoke("runs", "show", key)
        assert shown.exit_code == 0, shown.output
        facts = dict(
            line.strip().split(maxsplit=1)
            for line in shown.stdout.splitlines()[:12]
            if line.strip()
        )
        assert facts["instance"] == run.instance_uid
        assert facts["status"] == "finished"
        assert (facts["phases"], facts["episodes"], facts["steps"]) == ("2", "5", "50")
        phase_lines = [
            cells
            for cells in map(str.split, shown.stdout.splitlines())
            if len(cells) > 1 and cells[1].startswith("phase_")
        ]
        assert [(p[1], p[2], p[4], p[5]) for p in phase_lines] == [
            ("phase_train", "train", "3", "30"),
            ("phase_test", "test", "2", "20"),
        ]
    details = json.loads(invoke("runs", "show", run.instance_uid, "--json").stdout)
    assert [p["steps"] for p in details["phases"]] == [30, 20]
    document = invoke("runs", "show", run.instance_uid, "--document").stdout
    assert document == EXAMPLE.read_text()


def test_runs_show_names_an_unknown_run(workdir: Path) -> None:
    assert invoke("database-create").exit_code == 0
    assert_clean_error(invoke("runs", "show", "nope"), "no run instance and no run 'nope'")


def test_runs_show_reports_the_error_of_a_failed_run(workdir: Path) -> None:
    failing = write_experiment(workdir, "failing", environment=f"{COMPONENTS}:FailingEnvironment")
    assert invoke("experiment-start", failing).exit_code == 1
    shown = invoke("runs", "show", "failing")
    assert shown.exit_code == 0
    assert "status      error" in shown.stdout
    assert "fails at step 5" in shown.stdout


def test_experiment_check_syntax(workdir: Path) -> None:
    ok = invoke("experiment-check-syntax", EXAMPLE)
    assert ok.exit_code == 0, ok.output
    assert "1 experiment run(s) valid" in ok.stdout
    assert not (workdir / "palaestrio.db").exists()

    broken = workdir / "broken.yml"
    broken.write_text(EXAMPLE.read_text().replace("DummyMuscle", "DumyMuscle").replace("42", "x"))
    result = invoke("experiment-check-syntax", broken, EXAMPLE)
    assert_clean_error(result, "problems in experiment file(s)", "DumyMuscle", "seed")
    # Every problem, each with its file, line and place.
    problem_lines = [line for line in result.stderr.splitlines() if line.startswith("  ")]
    assert len(problem_lines) >= 3
    assert all(line.strip().startswith(f"{broken}:") for line in problem_lines)
    assert any("muscle" in line for line in problem_lines)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["experiment-start", "missing.yml"], ["missing.yml", "No such file"]),
        (
            ["experiment-start", str(EXAMPLE), "--store", "mysql://db/x"],
            ["unknown store URI scheme 'mysql'"],
        ),
        (
            ["experiment-start", str(EXAMPLE), "--store", "postgresql://nobody@127.0.0.1:1/x"],
            ["cannot use store database", "127.0.0.1"],
        ),
        (
            ["experiment-start", str(EXAMPLE), "--store", "sqlite:///no/such/dir/x.db"],
            ["does not exist"],
        ),
        (["runs", "list"], ["does not exist", "palaestrio database-create"]),
        (["runs", "list", "--store", "redis://x"], ["unknown store URI scheme 'redis'"]),
        (["database-create", "--store", "sqlite:///no/such/dir/x.db"], ["does not exist"]),
    ],
)
def test_errors_are_one_message_without_traceback(
    workdir: Path, args: list[str], fragments: list[str]
) -> None:
    assert_clean_error(invoke(*args), *fragments)


def test_broken_experiment_file_lists_every_problem(workdir: Path) -> None:
    broken = workdir / "broken.yml"
    broken.write_text("uid: x\nschedule: 3\n")
    result = invoke("experiment-start", broken, "missing.yml")
    assert_clean_error(result, "5 problems", "missing key 'seed'", "missing.yml")
    assert f"{broken}:2: schedule: expected a list" in result.stderr
    assert not (workdir / "palaestrio.db").exists()


def test_debug_shows_the_traceback(workdir: Path) -> None:
    result = cli_runner().invoke(cli, ["--debug", "runs", "list"])
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "StoreError"


def test_unknown_config_key_is_named(workdir: Path) -> None:
    (workdir / "palaestrio-runtime.conf.yaml").write_text("stor_uri: x\nbrokr: y\n")
    assert_clean_error(invoke("runs", "list"), "unknown keys brokr, stor_uri")


def test_config_precedence_file_env_flag(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "palaestrio-runtime.conf.yaml").write_text("store_uri: sqlite:///file.db\n")
    assert invoke("database-create").exit_code == 0
    assert (workdir / "file.db").exists()

    monkeypatch.setenv("PALAESTRIO_STORE_URI", "sqlite:///env.db")
    assert invoke("database-create").exit_code == 0
    assert (workdir / "env.db").exists()

    assert invoke("database-create", "--store", "sqlite:///flag.db").exit_code == 0
    assert (workdir / "flag.db").exists()

    other = workdir / "other.yaml"
    other.write_text("store_uri: sqlite:///other.db\nparallel_runs: 3\n")
    monkeypatch.delenv("PALAESTRIO_STORE_URI")
    shown = yaml.safe_load(invoke("-c", other, "runtime-config-show-effective").stdout)
    assert shown["store_uri"] == "sqlite:///other.db"
    assert shown["parallel_runs"] == 3
    text = invoke("-c", other, "runtime-config-show-effective").stdout
    assert f"# from {other}\nstore_uri:" in text


def test_experiment_start_uses_the_configured_store(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALAESTRIO_STORE_URI", "sqlite:///from-env.db")
    result = invoke("experiment-start", write_experiment(workdir, "quick"))
    assert result.exit_code == 0, result.output
    assert "store: sqlite:///from-env.db" in result.stdout
    engine = open_database("sqlite:///from-env.db")
    try:
        assert [r.status for r in list_runs(engine)] == ["finished"]
    finally:
        engine.dispose()


def test_runtime_config_show_default_is_the_default(workdir: Path) -> None:
    result = invoke("runtime-config-show-default")
    assert result.exit_code == 0
    assert result.stdout == DEFAULT_TEXT
    path = workdir / "palaestrio-runtime.conf.yaml"
    path.write_text(result.stdout)
    assert load_runtime_config(path) == RuntimeConfig()


def test_version_and_help(workdir: Path) -> None:
    assert "palaestrio, version" in invoke("--version").stdout
    helped = invoke("--help").stdout
    for command in (
        "experiment-start",
        "experiment-check-syntax",
        "database-create",
        "runs",
        "broker",
        "runtime-config-show-default",
    ):
        assert command in helped


def test_database_create_is_idempotent(workdir: Path) -> None:
    for _ in range(2):
        result = invoke("database-create", "--store", "sqlite:///made.db")
        assert result.exit_code == 0, result.output
        assert "store database ready: sqlite" in result.stdout
    with sqlite3.connect(workdir / "made.db") as connection:
        (version,) = connection.execute("SELECT count(*) FROM palaestrio_schema").fetchone()
    assert version == 1


def readme_block(heading: str, language: str) -> str:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_readme_experiment_file_example_is_valid_and_runs(workdir: Path) -> None:
    path = workdir / "readme.yml"
    path.write_text(readme_block("Experiment files", "yaml"))
    checked = invoke("experiment-check-syntax", path)
    assert checked.exit_code == 0, checked.output
    result = invoke("experiment-start", path)
    assert result.exit_code == 0, result.output
    engine = open_database("sqlite:///palaestrio.db")
    try:
        (run,) = list_runs(engine)
    finally:
        engine.dispose()
    # training: 2 episodes, evaluation: 1 episode, 100 steps each.
    assert (run.run_uid, run.status, run.phases, run.episodes, run.steps) == (
        "my-first-run",
        "finished",
        2,
        3,
        300,
    )


def test_readme_runtime_configuration_is_the_default(workdir: Path) -> None:
    path = workdir / "palaestrio-runtime.conf.yaml"
    path.write_text(readme_block("Runtime configuration", "yaml"))
    assert load_runtime_config(path, environ={}) == RuntimeConfig()


def test_experiment_file_warnings_are_plain(workdir: Path) -> None:
    numbered = workdir / "numbered.yml"
    numbered.write_text(EXAMPLE.read_text().replace('version: "3.5"', "version: 3.5"))
    result = invoke("experiment-check-syntax", numbered)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"Warning: {numbered}:")
    assert "version 3.5 is a number" in result.stderr
    assert "warnings.warn" not in result.stderr


def test_unusable_broker_endpoint_is_one_message(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALAESTRIO_BROKER_URI", "tcp://256.0.0.1:1")
    result = invoke("experiment-start", write_experiment(workdir, "nowhere"))
    assert_clean_error(result, "broker: ", "tcp://256.0.0.1:1")
