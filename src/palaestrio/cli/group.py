"""The top-level `palaestrio` group: its global options, the options subcommands share,
and the errors users cause (files, configuration, URIs) turned into one message with
exit status 2 instead of a traceback."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from palaestrio import __version__
from palaestrio.config import ConfigError, RuntimeConfig, load_runtime_config
from palaestrio.experiment import ExperimentFileError
from palaestrio.store.errors import StoreError

EXIT_FAILED = 1
EXIT_NOTHING_RUN = 2
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}
LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class PalaestrioCommandError(click.ClickException):
    """One clear message on stderr, exit status 2."""

    exit_code = EXIT_NOTHING_RUN


def _is_expected(error: BaseException) -> bool:
    """Errors that come from what the user gave (files, configuration, URIs)."""
    if isinstance(error, ConfigError | ExperimentFileError | StoreError):
        return True
    zmq = sys.modules.get("zmq")  # a bad broker endpoint; zmq is loaded if it was used
    return zmq is not None and isinstance(error, zmq.ZMQError)


@dataclasses.dataclass
class Options:
    """The global options, for subcommands."""

    config_path: Path | None
    verbose: int
    log_level: str | None
    debug: bool

    def config(self, **flags: Any) -> RuntimeConfig:
        """The effective configuration, with `-v`/`--log-level` as the logging level."""
        config = load_runtime_config(self.config_path, overrides=flags)
        level = self.level()
        if level is None or config.logging.dict_config is not None:
            return config
        return dataclasses.replace(
            config,
            logging=dataclasses.replace(config.logging, level=level),
            sources={**config.sources, "logging": "flag"},
        )

    def level(self) -> str | None:
        """The log level the flags ask for (None: the configured one)."""
        if self.log_level:
            return self.log_level.upper()
        return {0: None, 1: "INFO"}.get(self.verbose, "DEBUG")


_GLOBAL_FLAGS = {"-v", "--verbose", "--debug"}
_GLOBAL_WITH_VALUE = {"-c", "--config", "--log-level"}


def global_options_first(args: list[str]) -> list[str]:
    """`args` with the global options moved before the command, so that they are
    accepted after it too (`experiment-start x.yml -v`). `--` ends the options."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name = arg.split("=", 1)[0]
        if arg == "--":
            rest.extend(args[index:])
            break
        flag = arg in _GLOBAL_FLAGS or (arg.startswith("-v") and set(arg[1:]) == {"v"})
        if flag or (name in _GLOBAL_WITH_VALUE and "=" in arg):
            front.append(arg)
        elif arg in _GLOBAL_WITH_VALUE:
            front.extend(args[index : index + 2])
            index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


class _Group(click.Group):
    """Turns the errors users cause into one message without a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, global_options_first(args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            if not _is_expected(error) or (isinstance(ctx.obj, Options) and ctx.obj.debug):
                raise
            raise PalaestrioCommandError(_describe(error)) from None
        except KeyboardInterrupt:
            click.echo("palaestrio: interrupted", err=True)
            ctx.exit(130)


def _describe(error: BaseException) -> str:
    if type(error).__module__.startswith("zmq"):
        return f"broker: {error}"
    return str(error)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Runtime configuration file (default: ./palaestrio-runtime.conf.yaml, "
    "then ~/.config/palaestrio/runtime.conf.yaml).",
)
@click.option("-v", "--verbose", count=True, help="More log output: -v info, -vv debug.")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    help="Log level (overrides -v and the configuration).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(__version__, prog_name="palaestrio")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, verbose: int, log_level: str | None, debug: bool
) -> None:
    """palaestrio runs palaestrAI-style experiment runs on trio structured concurrency."""
    ctx.obj = Options(config_path, verbose, log_level, debug)


paths_argument = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="FILE_OR_DIR..."
)
store_option = click.option(
    "--store",
    "store_uri",
    metavar="URI",
    help="Store URI (default from the runtime configuration: sqlite:///palaestrio.db).",
)
