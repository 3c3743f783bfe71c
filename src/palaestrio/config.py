"""Runtime configuration: where the store and broker are, how much runs at once, logging.

Sources, later ones winning key by key: the built-in defaults, one YAML file (given
with ``-c/--config``, else ``palaestrio-runtime.conf.yaml`` in the working directory,
else ``runtime.conf.yaml`` in the user config directory), environment variables
``PALAESTRIO_<KEY>`` (values read as YAML scalars or flow collections), then command
line flags. An unknown key in a file is an error naming it; unknown ``PALAESTRIO_*``
variables are ignored (the environment is shared with other tools).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from palaestrio.mdp.broker_core import (
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_WAITING_BYTES,
    DEFAULT_MAX_WAITING_REQUESTS,
    DEFAULT_REQUEST_EXPIRY,
)

CONFIG_FILE_NAME = "palaestrio-runtime.conf.yaml"
USER_CONFIG_FILE_NAME = "runtime.conf.yaml"
ENV_PREFIX = "PALAESTRIO_"

DEFAULT_TEXT = """\
# palaestrio runtime configuration (palaestrio runtime-config-show-default).
# Put it in ./palaestrio-runtime.conf.yaml, in ~/.config/palaestrio/runtime.conf.yaml,
# or pass it with `palaestrio -c FILE`. Each key can be overridden by an environment
# variable PALAESTRIO_<KEY> (e.g. PALAESTRIO_STORE_URI) and some by flags.

# Where runs are stored: sqlite:///relative/file.db, sqlite:////absolute/file.db or
# postgresql://user:password@host:port/database.      (flag: --store)
store_uri: sqlite:///palaestrio.db

# The executor's MDP broker endpoint. null: a private ipc:// socket in a temporary
# directory only you can enter. Or e.g. tcp://127.0.0.1:5555.
broker_uri: null

# How many experiment runs execute at once.            (flag: -p/--parallel)
parallel_runs: 1

# When the store cannot write (a full disk, a read-only file system), it retries at
# most this many failed writes in a row, for at most this many seconds; then it gives
# up: the runs end `error` with the database's message and the executor exits non-zero.
store_write_retries: 20
store_write_retry_seconds: 30
# The store is a process of its own: when it dies (a storage fault), it is restarted,
# at most store_restarts times within store_restart_seconds; then the runs end `error`.
store_restarts: 3
store_restart_seconds: 60

# The executor's broker holds requests waiting for a worker within bounds: per service
# at most this many requests and bytes, for all services together at most this many
# bytes; a request over a bound is refused, one that waited this many seconds for a
# worker is dropped (both logged).
broker_max_waiting_requests: 1000
broker_max_waiting_bytes: 268435456
broker_max_queued_bytes: 536870912
broker_request_expiry: 60

# Log level of palaestrio's own output (governors' lines included, each tagged with
# its run uid): a level name, or a mapping with `level` and per-logger `loggers`,
# or a complete logging.config.dictConfig mapping (one with `version: 1`).
#                                                      (flags: -v/--verbose, --log-level)
logging:
  level: WARNING
  loggers: {}

# A run that ends in error is run again (a new instance) up to `retries` times, the
# first retry after `retry_backoff` seconds, each further one after twice as long,
# at most `retry_backoff_max`. Cancelled runs are never retried.   (flag: --retries)
retries: 0
retry_backoff: 1.0
retry_backoff_max: 60.0

# Where each run's whole governor output is kept (`palaestrio runs show RUN --log`).
# null: <database file>.logs/ for SQLite; for PostgreSQL
# $XDG_STATE_HOME/palaestrio/logs/<host>_<port>_<database>/ (~/.local/state/...).
run_log_dir: null
"""

_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class ConfigError(ValueError):
    """The runtime configuration has a problem; the message names where and what."""


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    level: str = "WARNING"
    loggers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    dict_config: Mapping[str, Any] | None = None
    """A complete `logging.config.dictConfig` mapping, when one was given."""


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    store_uri: str = "sqlite:///palaestrio.db"
    broker_uri: str | None = None
    parallel_runs: int = 1
    store_write_retries: int = 20
    store_write_retry_seconds: float = 30.0
    store_restarts: int = 3
    store_restart_seconds: float = 60.0
    broker_max_waiting_requests: int = DEFAULT_MAX_WAITING_REQUESTS
    broker_max_waiting_bytes: int = DEFAULT_MAX_WAITING_BYTES
    broker_max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    broker_request_expiry: float = DEFAULT_REQUEST_EXPIRY
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    retries: int = 0
    retry_backoff: float = 1.0
    retry_backoff_max: float = 60.0
    run_log_dir: str | None = None
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False)
    """Where each key's value came from: "default", a file path, "$PALAESTRIO_KEY", "flag"."""

    def to_yaml(self) -> str:
        """The effective values, with their sources as comments."""
        values: dict[str, Any] = {
            "store_uri": self.store_uri,
            "broker_uri": self.broker_uri,
            "parallel_runs": self.parallel_runs,
            **self.store_limits(),
            **self.broker_limits(),
            "logging": (
                dict(self.logging.dict_config)
                if self.logging.dict_config is not None
                else {"level": self.logging.level, "loggers": dict(self.logging.loggers)}
            ),
            "retries": self.retries,
            "retry_backoff": self.retry_backoff,
            "retry_backoff_max": self.retry_backoff_max,
            "run_log_dir": self.run_log_dir,
        }
        lines = []
        for key, value in values.items():
            text = yaml.safe_dump({key: value}, default_flow_style=False, sort_keys=False)
            lines.append(f"# from {self.sources.get(key, 'default')}\n{text}")
        return "".join(lines)

    def store_limits(self) -> dict[str, int | float]:
        """The store's retry and restart limits (`ExecutorOptions` has the same names)."""
        return {name: getattr(self, name) for name in _STORE_LIMITS}

    def broker_limits(self) -> dict[str, int | float]:
        """The broker's bounds (`ExecutorOptions` has the same names)."""
        return {name: getattr(self, name) for name in _BROKER_LIMITS}


_STORE_LIMITS = (
    "store_write_retries",
    "store_write_retry_seconds",
    "store_restarts",
    "store_restart_seconds",
)

_BROKER_LIMITS = (
    "broker_max_waiting_requests",
    "broker_max_waiting_bytes",
    "broker_max_queued_bytes",
    "broker_request_expiry",
)

KEYS = tuple(f.name for f in dataclasses.fields(RuntimeConfig) if f.name != "sources")


def default_config_paths(cwd: Path | None = None) -> list[Path]:
    """Where a configuration file is looked for when none is given, first match wins."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [
        (cwd or Path.cwd()) / CONFIG_FILE_NAME,
        Path(base) / "palaestrio" / USER_CONFIG_FILE_NAME,
    ]


def load_runtime_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RuntimeConfig:
    """The effective configuration: defaults < file < environment < `overrides` (flags).

    `path` None searches `default_config_paths()`; a given path must exist. `overrides`
    values that are None are ignored. Raises `ConfigError`.
    """
    raw: dict[str, Any] = {}
    sources: dict[str, str] = dict.fromkeys(KEYS, "default")
    file = Path(path) if path is not None else _first_existing(default_config_paths())
    if file is not None:
        for key, value in _read_file(file).items():
            raw[key], sources[key] = value, str(file)
    env = os.environ if environ is None else environ
    for key in KEYS:
        name = ENV_PREFIX + key.upper()
        if name in env:
            raw[key], sources[key] = _env_value(name, env[name]), f"${name}"
    for key, value in (overrides or {}).items():
        if key not in KEYS:
            raise ConfigError(f"unknown configuration key {key!r}")
        if value is not None:
            raw[key], sources[key] = value, "flag"
    return _build(raw, sources)


def _first_existing(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _read_file(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"cannot read runtime configuration {str(file)!r}: {error.strerror}"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"runtime configuration {file} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"runtime configuration {file} must be a mapping of keys, not {type(data).__name__}"
        )
    unknown = sorted(str(key) for key in data if key not in KEYS)
    if unknown:
        raise ConfigError(
            f"runtime configuration {file}: unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (known: {', '.join(KEYS)})"
        )
    return {str(key): value for key, value in data.items()}


def _env_value(name: str, text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"${name} is not a valid YAML value: {error}") from None


def _build(raw: Mapping[str, Any], sources: dict[str, str]) -> RuntimeConfig:
    default = RuntimeConfig()

    def where(key: str) -> str:
        return f"{key} (from {sources[key]})"

    store_uri = raw.get("store_uri", default.store_uri)
    if not isinstance(store_uri, str) or not store_uri:
        raise ConfigError(f"{where('store_uri')} must be a non-empty string, not {store_uri!r}")
    broker_uri = raw.get("broker_uri", default.broker_uri)
    if broker_uri is not None and (not isinstance(broker_uri, str) or "://" not in broker_uri):
        raise ConfigError(
            f"{where('broker_uri')} must be null or an endpoint like tcp://127.0.0.1:5555, "
            f"not {broker_uri!r}"
        )
    parallel_runs = raw.get("parallel_runs", default.parallel_runs)
    if isinstance(parallel_runs, str) and parallel_runs.strip().isdigit():
        parallel_runs = int(parallel_runs)
    if isinstance(parallel_runs, bool) or not isinstance(parallel_runs, int) or parallel_runs < 1:
        raise ConfigError(
            f"{where('parallel_runs')} must be an integer >= 1, not {parallel_runs!r}"
        )
    limits = {
        name: _non_negative(raw, name, getattr(default, name), where, integer=integer)
        for name, integer in zip(_STORE_LIMITS, (True, False, True, False), strict=True)
    }
    bounds = {
        name: _positive(raw, name, getattr(default, name), where, integer=integer)
        for name, integer in zip(_BROKER_LIMITS, (True, True, True, False), strict=True)
    }
    logging_config = _logging_config(raw.get("logging"), where("logging"))
    run_log_dir = raw.get("run_log_dir", default.run_log_dir)
    if run_log_dir is not None and (not isinstance(run_log_dir, str) or not run_log_dir):
        raise ConfigError(
            f"{where('run_log_dir')} must be null or a directory, not {run_log_dir!r}"
        )
    return RuntimeConfig(
        store_uri=store_uri,
        broker_uri=broker_uri,
        parallel_runs=parallel_runs,
        store_write_retries=int(limits["store_write_retries"]),
        store_write_retry_seconds=float(limits["store_write_retry_seconds"]),
        store_restarts=int(limits["store_restarts"]),
        store_restart_seconds=float(limits["store_restart_seconds"]),
        broker_max_waiting_requests=int(bounds["broker_max_waiting_requests"]),
        broker_max_waiting_bytes=int(bounds["broker_max_waiting_bytes"]),
        broker_max_queued_bytes=int(bounds["broker_max_queued_bytes"]),
        broker_request_expiry=float(bounds["broker_request_expiry"]),
        logging=logging_config,
        retries=int(_non_negative(raw, "retries", default.retries, where, integer=True)),
        retry_backoff=_non_negative(raw, "retry_backoff", default.retry_backoff, where),
        retry_backoff_max=_non_negative(raw, "retry_backoff_max", default.retry_backoff_max, where),
        run_log_dir=run_log_dir,
        sources=sources,
    )


def _non_negative(
    raw: Mapping[str, Any],
    key: str,
    default: float,
    where: Callable[[str], str],
    *,
    integer: bool = False,
) -> float:
    value = raw.get(key, default)  # environment values are YAML-read already
    wrong_kind = isinstance(value, bool) or not isinstance(value, int if integer else int | float)
    if wrong_kind or value < 0:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where(key)} must be {kind} >= 0, not {value!r}")
    return float(value) if not integer else int(value)


def _positive(
    raw: Mapping[str, Any],
    key: str,
    default: float,
    where: Callable[[str], str],
    *,
    integer: bool = False,
) -> float:
    """As `_non_negative`, for a bound that 0 would turn into "refuse everything"."""
    value = _non_negative(raw, key, default, where, integer=integer)
    if value == 0:
        raise ConfigError(f"{where(key)} must be {'an integer' if integer else 'a number'} > 0")
    return value


def _logging_config(value: Any, where: str) -> LoggingConfig:
    if value is None:
        return LoggingConfig()
    if isinstance(value, str):
        return LoggingConfig(level=_level(value, where))
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a level name or a mapping, not {value!r}")
    if "version" in value:
        return LoggingConfig(dict_config=value)
    unknown = sorted(str(key) for key in value if key not in ("level", "loggers"))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            "(known: level, loggers; or a dictConfig mapping with `version: 1`)"
        )
    loggers = value.get("loggers") or {}
    if not isinstance(loggers, dict):
        raise ConfigError(f"{where}: loggers must map logger names to levels, not {loggers!r}")
    return LoggingConfig(
        level=_level(value.get("level", "WARNING"), where),
        loggers={
            str(name): _level(level, f"{where}: loggers.{name}") for name, level in loggers.items()
        },
    )


def _level(value: Any, where: str) -> str:
    name = str(value).upper()
    if name not in _LEVELS:
        raise ConfigError(f"{where}: unknown log level {value!r} (use one of {', '.join(_LEVELS)})")
    return name


def level_number(name: str) -> int:
    number = logging.getLevelName(name)
    assert isinstance(number, int), name
    return number
