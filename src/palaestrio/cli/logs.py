"""Where log records go while a command runs: the live view's console (above its
table), plain lines on stderr, or the configuration's own dictConfig."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

from palaestrio.config import ConfigError, LoggingConfig

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
"""Time stamps of log lines, the same on a terminal (rich) and on a pipe."""
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def logging_to(
    config: LoggingConfig,
    level: str | None = None,
    console: Console | None = None,
) -> Iterator[None]:
    """Routes log records for the block, then restores the previous setup.

    `level` (from flags) overrides the configured level. With a `console` (the live
    view's), records print through it so they appear above the table; otherwise as
    plain lines on stderr. A dictConfig from the configuration is applied as given.
    """
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("", "palaestrio", *config.loggers)}
    handler: logging.Handler | None = None
    if config.dict_config is not None:
        try:
            logging.config.dictConfig(dict(config.dict_config))
        except (ValueError, TypeError, AttributeError, ImportError) as error:
            raise ConfigError(f"logging: not a usable dictConfig: {error}") from None
        if level is not None:
            logging.getLogger("palaestrio").setLevel(level)
    else:
        if console is not None:
            from rich.logging import RichHandler

            handler = RichHandler(
                console=console,
                show_path=False,
                markup=False,
                log_time_format=TIME_FORMAT,
                omit_repeated_times=False,
            )
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        else:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt=TIME_FORMAT))
        root.addHandler(handler)
        root.setLevel(level or config.level)
        for name, logger_level in config.loggers.items():
            logging.getLogger(name).setLevel(logger_level)
    try:
        yield
    finally:
        if handler is not None:
            root.removeHandler(handler)
        for name, old in saved.items():
            logging.getLogger(name).setLevel(old)
