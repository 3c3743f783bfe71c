"""The `palaestrio` command as a real process: what a user's shell or CI sees."""

from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest
import trio

from executor_support import stored_rows, write_experiment
from palaestrio.mdp.client import open_client
from palaestrio.mdp.worker import serve_worker

HERE = Path(__file__).parent
EXAMPLE = Path(str(resources.files("palaestrio") / "examples" / "dummy_experiment.yml"))
PYTHON_M = [sys.executable, "-m", "palaestrio"]
SCRIPT = [str(Path(sys.executable).parent / "palaestrio")]


def environment(**extra: str) -> dict[str, str]:
    """The test's environment, with the test components importable, no configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAESTRIO_")}
    env["PALAESTRIO_TEST_TAG"] = os.environ["PALAESTRIO_TEST_TAG"]
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def palaestrio(
    cwd: Path, *args: str | Path, command: list[str] = PYTHON_M, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd,
        env=environment(XDG_CONFIG_HOME=str(cwd / "xdg"), **extra),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def runs_in(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            """SELECT r.uid, i.uid, i.status FROM experiment_run_instances i
               JOIN experiment_runs r ON i.experiment_run_id = r.id ORDER BY i.id"""
        ).fetchall()


@pytest.mark.parametrize("command", [PYTHON_M, SCRIPT], ids=["python -m", "script"])
def test_the_readme_main_command(tmp_path: Path, command: list[str]) -> None:
    """What `nox -s run` runs: the bundled example into ./palaestrio.db."""
    result = palaestrio(tmp_path, "experiment-start", EXAMPLE, command=command)
    assert result.returncode == 0, result.stdout + result.stderr
    ((run_uid, instance, status),) = runs_in(tmp_path / "palaestrio.db")
    assert (run_uid, status) == ("Yo-ho, a dummy experiment run for me!", "finished")
    # 2 phases, 3 + 2 episodes of 10 steps; 1 environment, 2 agents.
    assert stored_rows(tmp_path / "palaestrio.db", instance) == (50, 100)
    assert instance in result.stdout
    assert "Traceback" not in result.stderr


def on_terminal(cwd: Path, *args: str | Path, columns: int) -> str:
    """`palaestrio ARGS` on a real terminal (a pty) `columns` wide, to its end (exit 0
    asserted): everything it drew."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*PYTHON_M, *map(str, args)],
        cwd=cwd,
        env=environment(XDG_CONFIG_HOME=str(cwd / "xdg"), COLUMNS=str(columns), TERM="xterm"),
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
        os.close(leader)
    return screen.decode(errors="replace")


def test_plain_output_and_exit_1_when_a_run_fails(tmp_path: Path) -> None:
    failing = write_experiment(
        tmp_path, "failing", environment="executor_components:FailingEnvironment"
    )
    fine = write_experiment(tmp_path, "fine")
    result = palaestrio(tmp_path, "experiment-start", "-p", "2", failing, fine)
    assert result.returncode == 1, result.stdout + result.stderr
    stored = {
        uid: (instance, status) for uid, instance, status in runs_in(tmp_path / "palaestrio.db")
    }
    assert stored["failing"][1] == "error"
    assert stored["fine"][1] == "finished"
    for uid, (instance, status) in stored.items():
        changes = [
            line.split(": ", 1)[1].split(",")[0]
            for line in result.stdout.splitlines()
            if f"run {uid} ({instance[:8]}): " in line
        ]
        assert changes == ["starting", "running", status]


@pytest.mark.parametrize(
    ("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
async def test_signals_exit_130_143_and_129_with_the_run_cancelled(
    tmp_path: Path, signum: signal.Signals, exit_code: int
) -> None:
    run_file = write_experiment(
        tmp_path, "long", environment="executor_components:SlowEnvironment", max_iter=100_000
    )
    process = await trio.lowlevel.open_process(
        [*PYTHON_M, "experiment-start", str(run_file)],
        cwd=tmp_path,
        env=environment(XDG_CONFIG_HOME=str(tmp_path / "xdg")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    output = b""
    try:
        with trio.fail_after(60):
            async for chunk in process.stdout:
                output += chunk
                if b"): running" in output:
                    break
            await trio.sleep(0.3)  # a few steps
            process.send_signal(signum)
            async for chunk in process.stdout:
                output += chunk
            errors = await process.stderr.receive_some(65536) or b""
            await process.wait()
    finally:
        process.kill()
        with trio.move_on_after(5, shield=True):
            await process.wait()
        await process.stdout.aclose()
        await process.stderr.aclose()
    assert process.returncode == exit_code, output.decode() + errors.decode()
    ((_, instance, status),) = runs_in(tmp_path / "palaestrio.db")
    assert status == "cancelled"
    world_states, muscle_actions = stored_rows(tmp_path / "palaestrio.db", instance)
    assert world_states == muscle_actions > 0
    assert f"({instance[:8]}): cancelled" in output.decode()
    assert "Traceback" not in errors.decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["experiment-start", "missing.yml"], "missing.yml: cannot read the file"),
        (["experiment-start", str(EXAMPLE), "--store", "mongodb://x/y"], "unknown store URI"),
        (
            ["experiment-start", str(EXAMPLE), "--store", "postgresql://u@127.0.0.1:1/x"],
            "cannot use store database",
        ),
        (["runs", "show", "x"], "does not exist"),
    ],
)
def test_errors_are_one_message_without_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = palaestrio(tmp_path, *args)
    assert result.returncode == 2
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    debugged = palaestrio(tmp_path, "--debug", *args)
    assert debugged.returncode == 1
    assert "Traceback" in debugged.stderr


def test_governor_log_lines_carry_the_run_uid(tmp_path: Path) -> None:
    run_file = write_experiment(tmp_path, "chatty")
    result = palaestrio(tmp_path, "-vv", "experiment-start", run_file)
    assert result.returncode == 0, result.stderr
    governor_lines = [line for line in result.stderr.splitlines() if "palaestrio.governor:" in line]
    assert governor_lines
    assert all("palaestrio.governor: [chatty] " in line for line in governor_lines)
    quiet = palaestrio(tmp_path, "experiment-start", run_file)
    assert "palaestrio.governor" not in quiet.stderr
    assert quiet.stderr == ""


def test_live_view_on_a_terminal(tmp_path: Path) -> None:
    run_file = write_experiment(tmp_path, "watched", max_iter=200, episodes=2)
    text = on_terminal(tmp_path, "experiment-start", run_file, columns=120)
    assert "steps/s" in text  # the live table's header
    assert "\x1b[" in text  # drawn with terminal control sequences
    assert "finished" in text
    assert "): running" not in text  # no plain lines on a terminal
    ((_, instance, status),) = runs_in(tmp_path / "palaestrio.db")
    assert status == "finished"
    assert instance in text  # the summary table


async def test_standalone_broker(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/broker"
    process = await trio.lowlevel.open_process(
        [*PYTHON_M, "broker", "--bind", endpoint],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        with trio.fail_after(30):
            line = await process.stdout.receive_some(4096)
            assert f"listening on {endpoint}".encode() in line
            assert (tmp_path / "broker").exists()

            # It brokers: a worker serves "echo", a client's request reaches it.
            async def echo(frames: list[bytes]) -> list[bytes]:
                return [b"echo", *frames]

            async with trio.open_nursery() as nursery:
                await nursery.start(serve_worker, endpoint, "echo", echo)
                async with open_client(endpoint) as client:
                    assert await client.request("echo", b"hello") == [b"echo", b"hello"]
                nursery.cancel_scope.cancel()
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
    finally:
        process.kill()
        with trio.move_on_after(5, shield=True):
            await process.wait()
        await process.stdout.aclose()


async def test_the_standalone_broker_takes_its_bounds_from_the_runtime_configuration(
    tmp_path: Path,
) -> None:
    endpoint = f"ipc://{tmp_path}/broker"
    process = await trio.lowlevel.open_process(
        [*PYTHON_M, "broker", "--bind", endpoint],
        cwd=tmp_path,
        env=environment(PALAESTRIO_BROKER_MAX_WAITING_BYTES="1000"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        with trio.fail_after(30):
            assert b"listening on" in await process.stdout.receive_some(4096)
            async with open_client(endpoint) as client:
                with trio.move_on_after(0.5):  # refused: no reply ever comes
                    await client.request("nobody", b"x" * 5000)
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
            stderr = b"".join([chunk async for chunk in process.stderr]).decode()
        assert "over the service's limit of 1,000 bytes" in stderr, stderr
    finally:
        process.kill()
        with trio.move_on_after(5, shield=True):
            await process.wait()
        await process.stdout.aclose()
        await process.stderr.aclose()
