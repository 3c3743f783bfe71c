"""Governor output kept whole in a per-run log file while the console gets it
rate-limited (issue 16, item 7); `runs show RUN --log` prints the file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import trio

from executor_support import write_experiment
from palaestrio.executor.governor_output import RunLog
from test_cli_process import PYTHON_M, environment, palaestrio, runs_in

COMPONENTS = "executor_components"
LINES = 20_000


def test_a_chatty_run_is_whole_in_its_log_file_and_rate_limited_on_the_console(
    tmp_path: Path,
) -> None:
    run_file = write_experiment(
        tmp_path,
        "chatty",
        environment=f"{COMPONENTS}:ChattyEnvironment",
        environment_params=f"{{lines: {LINES}}}",
    )
    result = palaestrio(tmp_path, "experiment-start", "--plain", run_file)
    assert result.returncode == 0, result.stderr[-2000:]
    ((_, instance, status),) = runs_in(tmp_path / "palaestrio.db")
    assert status == "finished"
    shown = [line for line in result.stderr.splitlines() if "chatty line" in line]
    assert 0 < len(shown) < LINES / 2
    assert "lines of output not shown" in result.stderr
    log_file = tmp_path / "palaestrio.db.logs" / f"{instance}.log"
    kept = log_file.read_text().splitlines()
    assert [line for line in kept if line.startswith("chatty line")] == [
        f"chatty line {index}" for index in range(LINES)
    ]
    printed = palaestrio(tmp_path, "runs", "show", instance[:8], "--log")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == log_file.read_text()
    by_run_uid = palaestrio(tmp_path, "runs", "show", "chatty", "--log")
    assert by_run_uid.stdout == printed.stdout


def test_runs_show_log_says_when_a_run_has_no_log_file(tmp_path: Path) -> None:
    quiet = write_experiment(tmp_path, "quiet")
    assert palaestrio(tmp_path, "experiment-start", quiet).returncode == 0
    ((_, instance, _),) = runs_in(tmp_path / "palaestrio.db")
    (tmp_path / "palaestrio.db.logs" / f"{instance}.log").unlink(missing_ok=True)
    result = palaestrio(tmp_path, "runs", "show", instance, "--log")
    assert result.returncode == 2
    assert "has no log file" in result.stderr and f"{instance}.log" in result.stderr


async def test_a_100_mb_line_goes_to_the_file_not_into_the_executors_memory(
    tmp_path: Path,
) -> None:
    size = 100_000_000
    run_file = write_experiment(
        tmp_path,
        "long-line",
        environment=f"{COMPONENTS}:ChattyEnvironment",
        environment_params=f"{{long_line: {size}}}",
    )
    process = await trio.lowlevel.open_process(
        [*PYTHON_M, "experiment-start", "--plain", str(run_file)],
        cwd=tmp_path,
        env=environment(XDG_CONFIG_HOME=str(tmp_path / "xdg")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak_kib = 0
    try:
        with trio.fail_after(90):
            while process.poll() is None:
                peak_kib = max(peak_kib, _peak_rss_kib(process.pid))
                await trio.sleep(0.05)
    finally:
        process.kill()
        with trio.move_on_after(5, shield=True):
            await process.wait()
    assert process.returncode == 0
    ((_, instance, _),) = runs_in(tmp_path / "palaestrio.db")
    log_file = tmp_path / "palaestrio.db.logs" / f"{instance}.log"
    assert log_file.stat().st_size >= size
    with log_file.open("rb") as kept:
        kept.seek(-200, 2)
        assert b"x" * 50 + b"\nend\n" in kept.read()
    # The executor's whole peak (~60 MB: Python, SQLAlchemy, zmq), far from the line's.
    assert 0 < peak_kib < 200_000, f"executor peak RSS {peak_kib} KiB"


def _peak_rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def test_a_log_file_ends_marked_truncated_at_its_cap(tmp_path: Path) -> None:
    run_log = RunLog(tmp_path / "logs" / "instance.log", max_bytes=10)
    for chunk in (b"0123456", b"789abc", b"def"):
        await run_log.write(chunk)
    run_log.close()
    assert (tmp_path / "logs" / "instance.log").read_bytes() == (
        b"0123456789\n[palaestrio: log truncated at 10 bytes; 6 more bytes not kept]\n"
    )
