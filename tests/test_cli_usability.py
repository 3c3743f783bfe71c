"""The command line at 80 columns, short ids, global options anywhere, and the small
things a researcher meets every day (issue 12)."""

from __future__ import annotations

import logging
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
from click.testing import Result

from cli_support import cli_runner
from executor_support import write_experiment
from palaestrio.cli import cli
from palaestrio.cli.group import global_options_first
from palaestrio.executor.governor_output import forward_governor_line
from palaestrio.status import RunStatus
from palaestrio.store import list_runs, open_database
from test_cli import assert_clean_error
from test_cli import workdir as workdir  # the fixture, used by name
from test_cli_process import environment, on_terminal

LONG_NAME = "baseline-with-a-rather-long-descriptive-run-name"


# click < 8.2 (which palaestrAI pins) mixes stderr into output unless told not to.


def invoke(*args: str | Path, columns: int = 80) -> Result:
    return cli_runner().invoke(
        cli, [str(a) for a in args], env={"COLUMNS": str(columns)}, catch_exceptions=True
    )


def column_text(output: str, header: str, after: str) -> str:
    """The text of one table column (between headers `header` and `after`), rows joined."""
    lines = output.splitlines()
    heading = next(line for line in lines if f" {header} " in line and f" {after} " in line)
    start, end = heading.index(f" {header} ") + 1, heading.index(f" {after} ") + 1
    body = lines[lines.index(heading) + 2 :]
    rows = body[: next((i for i, line in enumerate(body) if not line.strip()), len(body))]
    return "".join(line[start:end].strip() for line in rows)


def set_status(db: Path, status: str) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE experiment_run_instances SET status = ?", (status,))
    connection.close()


def only_run(uri: str = "sqlite:///palaestrio.db") -> tuple[str, str]:
    engine = open_database(uri)
    try:
        (run,) = list_runs(engine)
    finally:
        engine.dispose()
    return run.instance_uid, run.run_uid


def test_runs_list_at_80_columns_keeps_name_status_and_steps(workdir: Path) -> None:
    started = invoke("experiment-start", write_experiment(workdir, LONG_NAME, max_iter=1500))
    assert started.exit_code == 0, started.output
    instance, _ = only_run()
    # The summary at 80 columns: short uid, whole status and steps, the whole name.
    lines = started.stdout.splitlines()
    summary = lines[next(i for i, line in enumerate(lines) if " wall" in line) :]
    assert all(len(line) <= 80 for line in summary)
    row = next(line for line in summary if instance[:8] in line)
    assert instance not in "".join(summary)
    assert row.split()[2:5] == ["finished", "1", "1500"]
    assert column_text(started.stdout, "run", "instance") == LONG_NAME

    set_status(workdir / "palaestrio.db", "cancelled")
    listed = invoke("runs", "list")
    assert listed.exit_code == 0, listed.output
    assert all(len(line) <= 80 for line in listed.stdout.splitlines())
    row = next(line for line in listed.stdout.splitlines() if instance[:8] in line)
    cells = row.split()
    assert cells[0] == instance[:8]
    assert "cancelled" in cells
    assert cells[-2:] == ["1", "1500"]
    assert column_text(listed.stdout, "run", "experiment") == LONG_NAME
    # Wide enough, the whole uid.
    assert instance in invoke("runs", "list", columns=160).stdout


def test_short_ids_work_with_runs_show(workdir: Path) -> None:
    for name in ("one", "two"):
        assert invoke("experiment-start", write_experiment(workdir, name)).exit_code == 0
    engine = open_database("sqlite:///palaestrio.db")
    try:
        runs = list_runs(engine)
    finally:
        engine.dispose()
    for run in runs:
        shown = invoke("runs", "show", run.instance_uid[:8])
        assert shown.exit_code == 0, shown.output
        assert f"instance    {run.instance_uid}" in shown.stdout
    # Shorter than what the list shows: not a short id.
    assert_clean_error(invoke("runs", "show", runs[0].instance_uid[:7]), "no run instance")
    # Two instances that begin alike: the candidates are listed.
    with sqlite3.connect(workdir / "palaestrio.db") as connection:
        for index, run in enumerate(runs):
            connection.execute(
                "UPDATE experiment_run_instances SET uid = ? WHERE uid = ?",
                (f"{'ab' * 4}{index:024d}", run.instance_uid),
            )
    connection.close()
    result = invoke("runs", "show", "abababab")
    assert_clean_error(result, "ambiguous", "abababab" + "0" * 24, "(one, finished)", "(two, ")


def test_runs_list_rejects_an_unknown_status(workdir: Path) -> None:
    result = invoke("runs", "list", "--status", "bogus")
    assert result.exit_code == 2
    for status in ("scheduled", "running", "finished", "error", "cancelled"):
        assert status in result.stderr
    assert RunStatus.STARTING not in result.stderr  # never stored


@pytest.mark.parametrize("flags", [["-v"], ["--log-level", "debug"]])
def test_runtime_config_show_effective_reflects_the_level_flags(
    workdir: Path, flags: list[str]
) -> None:
    before = invoke(*flags, "runtime-config-show-effective")
    after = invoke("runtime-config-show-effective", *flags)
    assert before.exit_code == after.exit_code == 0, before.output + after.output
    expected = "INFO" if flags == ["-v"] else "DEBUG"
    assert f"# from flag\nlogging:\n  level: {expected}" in before.stdout
    assert after.stdout == before.stdout
    assert "level: WARNING" in invoke("runtime-config-show-effective").stdout


def test_global_options_after_the_command() -> None:
    assert global_options_first(["experiment-start", "x.yml", "-vv", "--log-level=info"]) == [
        "-vv",
        "--log-level=info",
        "experiment-start",
        "x.yml",
    ]
    assert global_options_first(["runs", "list", "-c", "my.yaml", "--debug", "-p", "2"]) == [
        "-c",
        "my.yaml",
        "--debug",
        "runs",
        "list",
        "-p",
        "2",
    ]
    assert global_options_first(["run", "--", "-v"]) == ["run", "--", "-v"]


def test_broken_config_after_the_command_is_used(workdir: Path) -> None:
    (workdir / "bad.yaml").write_text("nonsense_key: 1\n")
    result = invoke("runtime-config-show-effective", "--config", "bad.yaml")
    assert_clean_error(result, "nonsense_key")


def test_summary_and_runs_show_give_the_same_wall_time(workdir: Path) -> None:
    started = invoke("experiment-start", write_experiment(workdir, "timed", max_iter=300))
    assert started.exit_code == 0, started.output
    instance, _ = only_run()
    row = next(line for line in started.stdout.splitlines() if line.startswith(" timed "))
    shown = invoke("runs", "show", instance).stdout
    wall = next(line for line in shown.splitlines() if line.startswith("wall time"))
    assert wall.split(maxsplit=2)[2].strip() == " ".join(row.split()[5:])


def test_governor_lines_name_their_logger_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="palaestrio.governor"):
        forward_governor_line("chatty", "INFO palaestrio.governor: phase 1 started")
        forward_governor_line("chatty", "WARNING palaestrio.simulation: slow step")
    assert [r.getMessage() for r in caplog.records] == [
        "[chatty] phase 1 started",
        "[chatty] palaestrio.simulation: slow step",
    ]


def test_log_time_stamps_are_the_same_on_a_terminal_and_a_pipe() -> None:
    import io

    from rich.console import Console

    from palaestrio.cli.logs import logging_to
    from palaestrio.config import LoggingConfig

    terminal = Console(file=io.StringIO(), width=200, color_system=None, force_terminal=True)
    pipe = io.StringIO()
    log = logging.getLogger("palaestrio.test_stamps")
    with logging_to(LoggingConfig(), "INFO", terminal):
        log.info("first")
        log.info("second")
    handler = logging.StreamHandler(pipe)
    with logging_to(LoggingConfig(), "INFO", None):
        plain = logging.getLogger().handlers[-1]
        handler.setFormatter(plain.formatter)
        log.addHandler(handler)
        log.info("third")
        log.removeHandler(handler)
    assert isinstance(terminal.file, io.StringIO)
    stamped = [line for line in terminal.file.getvalue().splitlines() if line.strip()]
    # Both lines carry the whole stamp (rich leaves a repeated one out by default).
    stamps = [line.split(" INFO")[0].strip() for line in stamped]
    assert len(stamps) == 2 and all(len(stamp) == 19 for stamp in stamps), stamped
    assert len(pipe.getvalue().split(" INFO ")[0]) == 19, pipe.getvalue()


def test_broker_on_a_port_in_use_or_a_bad_endpoint_is_one_line(tmp_path: Path) -> None:
    context = zmq.Context()
    taken = context.socket(zmq.ROUTER)
    try:
        port = taken.bind_to_random_port("tcp://127.0.0.1")
        for endpoint, message in (
            (f"tcp://127.0.0.1:{port}", "Address already in use"),
            ("bogus://nowhere", "Protocol not supported"),
        ):
            result = subprocess.run(
                [sys.executable, "-m", "palaestrio", "broker", "--bind", endpoint],
                cwd=tmp_path,
                env=environment(XDG_CONFIG_HOME=str(tmp_path / "xdg")),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 2, result.stderr
            assert result.stderr.splitlines() == [f"Error: broker: {message} (addr='{endpoint}')"]
    finally:
        taken.close(linger=0)
        context.term()


def test_live_view_and_summary_on_an_80_column_terminal(tmp_path: Path) -> None:
    """Through a real terminal (a pty) of 80 columns: names, statuses and steps whole."""
    run_file = write_experiment(tmp_path, LONG_NAME, max_iter=200, episodes=2)
    screen = on_terminal(tmp_path, "experiment-start", run_file, columns=80)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    lines = text.replace("\r", "\n").splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "400/400 100%" in text  # the live row of the finished run
    (instance, _) = only_run("sqlite:///" + str(tmp_path / "palaestrio.db"))
    summary = next(
        line for line in lines if line.startswith(f" {LONG_NAME[:10]}") and instance[:8] in line
    )
    assert summary.split()[2:5] == ["finished", "2", "400"]
    assert instance not in text
