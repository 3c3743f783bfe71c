"""Live progress (rich, rendered to a file-backed console) and plain lines."""

from __future__ import annotations

import io
import logging
from importlib import resources
from pathlib import Path

import pytest
import trio
from rich.console import Console

from executor_support import load_run
from palaestrio.cli.live import LiveProgress, PlainProgress, RunRow
from palaestrio.cli.logs import logging_to
from palaestrio.config import ConfigError, LoggingConfig
from palaestrio.executor import Executor, ExperimentRunRuntimeInformation
from palaestrio.experiment import load_experiment_runs
from palaestrio.messages import RunProgress
from palaestrio.status import RunStatus

EXAMPLE = Path(str(resources.files("palaestrio") / "examples" / "dummy_experiment.yml"))


def example_info(instance: str = "a" * 32) -> ExperimentRunRuntimeInformation:
    (run,) = load_experiment_runs(EXAMPLE)
    return ExperimentRunRuntimeInformation(run, instance)


def text_of(view: LiveProgress, now: float | None = None) -> str:
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(view.render(now))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def row_cells(text: str, run_uid: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip().startswith(run_uid)]


def test_live_rows_show_phase_episode_step_rate_status_elapsed() -> None:
    view = LiveProgress(Console(file=io.StringIO()))
    running, failing = example_info("a" * 32), example_info("b" * 32)
    for info in (running, failing):
        view.update(info)
    text = text_of(view)
    for header in ("run", "phase", "episode", "step", "steps/s", "status", "elapsed"):
        assert header in text
    assert text.count("scheduled") == 2

    running.status = RunStatus.RUNNING
    view.update(running)
    running.progress = RunProgress("a" * 32, 1, "phase_test", 0, 1, 7, 37)
    running.steps = 37
    view.update(running)
    row = view.tracker.rows["a" * 32]
    assert row.started is not None
    text = text_of(view, now=row.started + 2.0)
    assert "phase_test (2/2)" in text
    cells = next(line.split() for line in text.splitlines() if "phase_test" in line)
    after_phase = cells[cells.index("(2/2)") + 1 :]
    # episode 2 of 2, steps 37 of 50 (74 %), steps/s, eta, status, elapsed
    assert after_phase[:3] == ["2/2", "37/50", "74%"]
    assert after_phase[-3:] == ["running", "2.0", "s"]

    failing.status = RunStatus.RUNNING
    view.update(failing)
    failing.status, failing.reason = RunStatus.ERROR, "boom"
    view.update(failing)
    running.status = RunStatus.FINISHED
    view.update(running)
    text = text_of(view)
    # Ended runs stay, in the order they were scheduled.
    statuses = [word for word in text.split() if word in ("finished", "error")]
    assert statuses == ["finished", "error"]
    assert "phase_test (2/2)" in text


def test_rate_is_recent_while_running_and_average_once_ended() -> None:
    row = RunRow("r", status=RunStatus.RUNNING, started=100.0)
    row.samples.extend([(100.5, 0), (101.0, 1000), (102.0, 5000), (103.0, 9000)])
    # Only the last two seconds count: (9000 - 1000) / 2 s.
    assert row.rate(103.0) == 4000
    row.ended, row.steps = 104.0, 10_000
    assert row.rate(200.0) == 2500
    assert row.elapsed(200.0) == 4.0
    assert RunRow("r").rate(1.0) is None


def test_plain_lines_one_per_state_change() -> None:
    stream = io.StringIO()
    view = PlainProgress(stream)
    info = example_info()
    view.update(info)  # scheduled: not a line of its own
    for status in (RunStatus.STARTING, RunStatus.RUNNING):
        info.status = status
        view.update(info)
    for steps in (10, 20, 30):
        info.progress = RunProgress(info.instance_uid, 0, "phase_train", 0, 0, steps % 10, steps)
        info.steps = steps
        view.update(info)
    info.status, info.reason = RunStatus.CANCELLED, "executor interrupted by SIGINT\nmore"
    view.update(info)
    view.update(info)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    uid = info.experiment_run.uid
    assert lines[0].endswith(f"run {uid} (aaaaaaaa): starting")
    assert lines[1].endswith(": running")
    assert ": cancelled, 30 steps in " in lines[2]
    assert lines[2].endswith(": executor interrupted by SIGINT")


async def test_live_view_of_real_runs(tmp_path: Path) -> None:
    file = io.StringIO()
    console = Console(file=file, width=140, force_terminal=True, color_system=None)
    view = LiveProgress(console)
    updates: list[tuple[str, int]] = []

    def update(info: ExperimentRunRuntimeInformation) -> None:
        updates.append((info.status, info.steps))
        view.update(info)

    executor = Executor(
        2, store_uri=f"sqlite:///{tmp_path / 'runs.db'}", handle_signals=False, on_update=update
    )
    # About a second per run, so that progress messages (a few a second) come mid-run.
    slow = {
        "environment": "executor_components:SlowEnvironment",
        "environment_params": "{delay: 0.002}",
    }
    executor.schedule(
        [
            load_run(tmp_path, "one", max_iter=300, episodes=2, **slow),
            load_run(tmp_path, "two", **slow),
        ]
    )
    with trio.fail_after(60), view.showing():
        await executor.execute()
    final = text_of(view)
    assert [cells[-3] for cells in row_cells(final, "one") + row_cells(final, "two")] == [
        "finished",
        "finished",
    ]
    one = view.tracker.rows[executor.experiment_runs()[0].instance_uid]
    assert (one.phase, one.episode, one.steps) == ("phase_0 (1/1)", "2/2", 600)
    # Progress arrived while running, not only at the end.
    assert any(status == "running" and 0 < steps < 600 for status, steps in updates)
    # The live display drew the table on the (file-backed) terminal.
    assert "steps/s" in file.getvalue()
    assert "finished" in file.getvalue()


async def test_plain_lines_of_a_real_run(tmp_path: Path) -> None:
    stream = io.StringIO()
    view = PlainProgress(stream)
    executor = Executor(
        1,
        store_uri=f"sqlite:///{tmp_path / 'runs.db'}",
        handle_signals=False,
        on_update=view.update,
    )
    executor.schedule(load_run(tmp_path, "solo", max_iter=500))
    with trio.fail_after(60):
        await executor.execute()
    lines = stream.getvalue().splitlines()
    assert [line.split(": ", 1)[1].split(",")[0] for line in lines] == [
        "starting",
        "running",
        "finished",
    ]
    assert ", 500 steps in " in lines[-1]


def test_log_records_print_through_the_live_console() -> None:
    file = io.StringIO()
    console = Console(file=file, width=140, color_system=None)
    root = logging.getLogger()
    before = list(root.handlers)
    with logging_to(LoggingConfig(level="INFO"), console=console):
        logging.getLogger("palaestrio.governor").info("[run-x] hello from a governor")
        logging.getLogger("palaestrio.governor").debug("not shown")
    assert root.handlers == before
    assert "palaestrio.governor: [run-x] hello from a governor" in file.getvalue()
    assert "not shown" not in file.getvalue()


def test_flag_level_overrides_configured_level() -> None:
    file = io.StringIO()
    console = Console(file=file, width=140, color_system=None)
    config = LoggingConfig(level="ERROR", loggers={"palaestrio.store": "CRITICAL"})
    with logging_to(config, level="DEBUG", console=console):
        logging.getLogger("palaestrio.x").debug("debug line")
        logging.getLogger("palaestrio.store").error("store line")
    assert "debug line" in file.getvalue()
    assert "store line" not in file.getvalue()
    assert logging.getLogger("palaestrio.store").level == logging.NOTSET


def test_unusable_dict_config_is_a_config_error() -> None:
    config = LoggingConfig(dict_config={"version": 1, "handlers": {"h": {"class": "no.Such"}}})
    with pytest.raises(ConfigError, match="logging: not a usable dictConfig"), logging_to(config):
        pass
