"""Issue 12: unknown sensor/actuator ids caught before any process starts (with file and
line), said once at run time otherwise; progress against the run's total."""

from __future__ import annotations

import io
from pathlib import Path

from click.testing import Result
from rich.console import Console

from cli_support import cli_runner
from executor_support import write_experiment
from palaestrio.cli import cli
from palaestrio.cli.live import LiveProgress, PlainProgress
from palaestrio.cli.run_length import expected_steps
from palaestrio.executor import ExperimentRunRuntimeInformation
from palaestrio.experiment import load_experiment_runs
from palaestrio.messages import RunProgress
from palaestrio.status import RunStatus
from test_cli import EXAMPLE, assert_clean_error
from test_cli import workdir as workdir  # the fixture, used by name


def invoke(*args: str | Path) -> Result:
    return cli_runner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def with_ids(path: Path, sensor: str, actuator: str) -> Path:
    """`path` with the first sensor and the last actuator of agent_0 replaced."""
    text = path.read_text()
    text = text.replace("sensors: [env.0,", f"sensors: [{sensor},", 1)
    text = text.replace("env.3, env.4]\n", f"env.3, {actuator}]\n").replace(
        f"sensors: [{sensor}, env.1, env.2, env.3, {actuator}]",
        f"sensors: [{sensor}, env.1, env.2, env.3, env.4]",
    )
    path.write_text(text)
    return path


def line_of(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_unknown_ids_are_caught_before_any_process_starts(workdir: Path) -> None:
    run_file = with_ids(write_experiment(workdir, "typo"), "env.42", "env.x")
    assert "actuators: [env.0, env.1, env.2, env.3, env.x]" in run_file.read_text()
    checked = invoke("experiment-check-syntax", run_file)
    sensors_line, actuators_line = line_of(run_file, "sensors:"), line_of(run_file, "actuators:")
    assert_clean_error(
        checked,
        f"{run_file}:{sensors_line}: schedule[0].phase_0.agents[0].sensors[0]: "
        "sensor 'env.42' does not exist: environment 'env' offers sensors env.0, env.1,",
        f"{run_file}:{actuators_line}: schedule[0].phase_0.agents[0].actuators[4]: "
        "actuator 'env.x' does not exist",
    )
    started = invoke("experiment-start", run_file)
    assert_clean_error(started, "sensor 'env.42' does not exist")
    assert not (workdir / "palaestrio.db").exists()  # no store, no governor: nothing ran
    # Ids the environment has pass.
    fine = with_ids(write_experiment(workdir, "fine"), "env.9", "env.8")
    assert invoke("experiment-check-syntax", fine).exit_code == 0


def test_an_environment_that_cannot_tell_fails_at_run_time_saying_it_once(
    workdir: Path,
) -> None:
    run_file = with_ids(
        write_experiment(workdir, "late", environment="ids_components:UndeclaredEnvironment"),
        "env.42",
        "env.4",
    )
    assert invoke("experiment-check-syntax", run_file).exit_code == 0
    started = invoke("experiment-start", run_file)
    assert started.exit_code == 1, started.output
    assert (started.stdout + started.stderr).count("['env.42'] do not exist") == 1
    assert "error, 0 steps" in started.stdout


def info_of(instance: str = "a" * 32) -> ExperimentRunRuntimeInformation:
    (run,) = load_experiment_runs(EXAMPLE)
    return ExperimentRunRuntimeInformation(run, instance)


def test_run_length_from_max_iter_episodes_and_workers(workdir: Path) -> None:
    assert expected_steps(info_of().experiment_run) == (3 + 2) * 10  # max_iter's default
    (run,) = load_experiment_runs(write_experiment(workdir, "given", max_iter=7, episodes=3))
    assert expected_steps(run) == 21
    custom = write_experiment(workdir, "custom").read_text()
    custom = custom.replace(
        "palaestrio.simulation:EnvironmentTerminationCondition",
        "ids_components:EarlyEnd",
    )
    (workdir / "custom.yml").write_text(custom)
    (run,) = load_experiment_runs(workdir / "custom.yml")
    assert expected_steps(run) is None  # a condition of its own may end episodes early


def render(view: LiveProgress, now: float) -> str:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(view.render(now))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_live_rows_show_steps_of_the_total_and_an_eta_at_80_columns() -> None:
    view = LiveProgress(Console(file=io.StringIO()))
    running, failing = info_of("a" * 32), info_of("b" * 32)
    for info in (running, failing):
        info.status = RunStatus.RUNNING
        view.update(info)
    running.progress = RunProgress("a" * 32, 0, "phase_train", 0, 1, 0, 20)
    running.steps = 20
    view.update(running)
    row = view.tracker.rows["a" * 32]
    assert row.started is not None
    row.samples.clear()  # 10 steps in the last second
    row.samples.extend([(row.started, 10), (row.started + 1.0, 20)])
    text = render(view, row.started + 1.0)
    assert all(len(line) <= 80 for line in text.splitlines())
    cells = next(line.split() for line in text.splitlines() if "20/50" in line)
    # 20 of 50 steps, 40 %, 10 steps/s, so 30 steps left take 3 s.
    assert cells[cells.index("20/50") : cells.index("20/50") + 5] == [
        "20/50",
        "40%",
        "10",
        "3.0",
        "s",
    ]
    assert cells[-3] == "running"

    # A run that fails before any progress message keeps the phase it reached.
    failing.status, failing.reason, failing.phases = RunStatus.ERROR, "boom", 2
    view.update(failing)
    running.status, running.steps = RunStatus.FINISHED, 50
    view.update(running)
    text = render(view, row.started + 5.0)
    finished = next(line for line in text.splitlines() if "finished" in line)
    assert "50/50 100%" in finished  # finished rows keep their step count
    errored = next(line for line in text.splitlines() if " error " in line)
    assert "phase_test" in errored  # its "(2/2)" wraps at 80 columns
    assert view.tracker.rows["b" * 32].phase == "phase_test (2/2)"


def test_plain_output_prints_progress_every_interval() -> None:
    stream, now = io.StringIO(), [0.0]
    view = PlainProgress(stream, interval=10.0, clock=lambda: now[0])
    info = info_of()
    info.status = RunStatus.RUNNING
    view.update(info)
    for second in range(1, 26):
        now[0] = float(second)
        info.progress = RunProgress(info.instance_uid, 0, "phase_train", 0, 0, second % 10, second)
        info.steps = second
        view.update(info)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # running, then progress at 10 s and at 20 s
    # 1 step/s over the last two seconds: 40 steps left take 40 s.
    assert lines[1].endswith(
        "running, phase_train (1/2), episode 1/3, 10/50 20% steps, 1 steps/s, ETA 40.0 s"
    )
    assert lines[2].endswith("20/50 40% steps, 1 steps/s, ETA 30.0 s")
    quiet = PlainProgress(io.StringIO(), interval=0, clock=lambda: now[0])
    quiet.update(info)
    now[0] += 100
    quiet.update(info)
    assert isinstance(quiet.stream, io.StringIO)
    assert len(quiet.stream.getvalue().splitlines()) == 1


def test_experiment_start_takes_the_progress_interval(workdir: Path) -> None:
    result = invoke("experiment-start", EXAMPLE, "--progress-interval", "0")
    assert result.exit_code == 0, result.output
    assert invoke("experiment-start", EXAMPLE, "--progress-interval", "-1").exit_code == 2
