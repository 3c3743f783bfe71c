"""Running the CLI in-process, with stdout and stderr apart on every click version
(click 8.1, which palaestrAI pins, mixes them unless told not to)."""

from __future__ import annotations

from inspect import signature

from click.testing import CliRunner

_SEPARATE = {"mix_stderr": False} if "mix_stderr" in signature(CliRunner).parameters else {}


def cli_runner() -> CliRunner:
    return CliRunner(**_SEPARATE)  # type: ignore[arg-type]
