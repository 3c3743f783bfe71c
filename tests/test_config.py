"""Runtime configuration: sources, precedence, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from palaestrio.config import (
    DEFAULT_TEXT,
    ConfigError,
    LoggingConfig,
    RuntimeConfig,
    default_config_paths,
    load_runtime_config,
)
from palaestrio.executor import ExecutorOptions
from palaestrio.mdp import broker_core


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


def test_defaults_without_any_source(cwd: Path) -> None:
    config = load_runtime_config(environ={})
    assert config == RuntimeConfig()
    assert config.store_uri == "sqlite:///palaestrio.db"
    assert config.broker_uri is None
    assert config.parallel_runs == 1
    assert config.logging == LoggingConfig(level="WARNING")
    assert set(config.sources.values()) == {"default"}


def test_default_text_is_the_default_configuration(cwd: Path) -> None:
    path = cwd / "given.yaml"
    path.write_text(DEFAULT_TEXT)
    assert load_runtime_config(path, environ={}) == RuntimeConfig()
    assert set(yaml.safe_load(DEFAULT_TEXT)) == {
        "store_uri",
        "broker_uri",
        "parallel_runs",
        "store_write_retries",
        "store_write_retry_seconds",
        "store_restarts",
        "store_restart_seconds",
        "broker_max_waiting_requests",
        "broker_max_waiting_bytes",
        "broker_max_queued_bytes",
        "broker_request_expiry",
        "logging",
        "retries",
        "retry_backoff",
        "retry_backoff_max",
        "run_log_dir",
    }


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("store_write_retries", "5", 5),
        ("store_write_retry_seconds", "0.5", 0.5),
        ("store_restarts", "0", 0),
        ("store_restart_seconds", "10", 10.0),
    ],
)
def test_store_limits_from_the_environment(
    cwd: Path, key: str, value: str, expected: float
) -> None:
    config = load_runtime_config(environ={f"PALAESTRIO_{key.upper()}": value})
    assert config.store_limits()[key] == expected


def test_broker_bounds_default_to_the_brokers_own() -> None:
    assert RuntimeConfig().broker_limits() == {
        "broker_max_waiting_requests": broker_core.DEFAULT_MAX_WAITING_REQUESTS,
        "broker_max_waiting_bytes": broker_core.DEFAULT_MAX_WAITING_BYTES,
        "broker_max_queued_bytes": broker_core.DEFAULT_MAX_QUEUED_BYTES,
        "broker_request_expiry": broker_core.DEFAULT_REQUEST_EXPIRY,
    }
    options = ExecutorOptions()
    for name, value in RuntimeConfig().broker_limits().items():
        assert getattr(options, name) == value


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("broker_max_waiting_requests", "10", 10),
        ("broker_max_waiting_bytes", "1000", 1000),
        ("broker_max_queued_bytes", "2000", 2000),
        ("broker_request_expiry", "0.5", 0.5),
    ],
)
def test_broker_bounds_from_the_environment(
    cwd: Path, key: str, value: str, expected: float
) -> None:
    config = load_runtime_config(environ={f"PALAESTRIO_{key.upper()}": value})
    assert config.broker_limits()[key] == expected
    assert f"{key}: {value}" in config.to_yaml()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("broker_max_waiting_bytes", "0"),
        ("broker_max_waiting_bytes", "-5"),
        ("broker_max_queued_bytes", "1.5"),
        ("broker_max_waiting_requests", "many"),
        ("broker_request_expiry", "0"),
    ],
)
def test_bad_broker_bounds_are_named(cwd: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key} \(from \$PALAESTRIO_{key.upper()}\) must be"):
        load_runtime_config(environ={f"PALAESTRIO_{key.upper()}": value})


@pytest.mark.parametrize("value", ["-1", "many", "true", "1.5"])
def test_bad_store_retry_counts_are_named(cwd: Path, value: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"store_write_retries \(from \$PALAESTRIO_STORE_WRITE_RETRIES\) must be an integer",
    ):
        load_runtime_config(environ={"PALAESTRIO_STORE_WRITE_RETRIES": value})


def test_file_then_environment_then_flags(cwd: Path) -> None:
    path = cwd / "palaestrio-runtime.conf.yaml"
    path.write_text(
        "store_uri: sqlite:///file.db\nparallel_runs: 2\nbroker_uri: tcp://127.0.0.1:7\n"
    )
    from_file = load_runtime_config(environ={})
    assert (from_file.store_uri, from_file.parallel_runs) == ("sqlite:///file.db", 2)
    assert from_file.sources["store_uri"] == str(path)

    env = {"PALAESTRIO_STORE_URI": "sqlite:///env.db", "PALAESTRIO_PARALLEL_RUNS": "3"}
    from_env = load_runtime_config(environ=env)
    assert (from_env.store_uri, from_env.parallel_runs) == ("sqlite:///env.db", 3)
    assert from_env.broker_uri == "tcp://127.0.0.1:7"
    assert from_env.sources["store_uri"] == "$PALAESTRIO_STORE_URI"

    flagged = load_runtime_config(
        environ=env, overrides={"store_uri": "sqlite:///flag.db", "parallel_runs": None}
    )
    assert (flagged.store_uri, flagged.parallel_runs) == ("sqlite:///flag.db", 3)
    assert flagged.sources["store_uri"] == "flag"
    assert flagged.sources["parallel_runs"] == "$PALAESTRIO_PARALLEL_RUNS"


def test_working_directory_file_before_user_config_dir(cwd: Path) -> None:
    local, user = default_config_paths()
    assert local == cwd / "palaestrio-runtime.conf.yaml"
    assert user == cwd / "xdg" / "palaestrio" / "runtime.conf.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("store_uri: sqlite:///user.db\n")
    assert load_runtime_config(environ={}).store_uri == "sqlite:///user.db"
    local.write_text("store_uri: sqlite:///local.db\n")
    assert load_runtime_config(environ={}).store_uri == "sqlite:///local.db"


def test_unknown_keys_are_named(cwd: Path) -> None:
    path = cwd / "c.yaml"
    path.write_text("store_uri: sqlite:///x.db\nstoreuri: y\nparalel_runs: 2\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown keys paralel_runs, storeuri \(known"):
        load_runtime_config(path, environ={})


def test_unknown_environment_variables_are_ignored(cwd: Path) -> None:
    config = load_runtime_config(environ={"PALAESTRIO_SOMETHING_ELSE": "1"})
    assert config == RuntimeConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("parallel_runs: 0\n", r"parallel_runs \(from .*c\.yaml\) must be an integer >= 1"),
        ("parallel_runs: two\n", "must be an integer"),
        ("store_uri: ''\n", "store_uri .* must be a non-empty string"),
        ("broker_uri: localhost\n", "broker_uri .* must be null or an endpoint"),
        ("logging: LOUD\n", "unknown log level 'LOUD'"),
        ("logging: {level: INFO, colour: red}\n", "logging .*: unknown key colour"),
        ("logging: {loggers: {palaestrio: LOUD}}\n", "loggers.palaestrio: unknown log level"),
        ("- a list\n", "must be a mapping of keys"),
        ("store_uri: [\n", "not valid YAML"),
    ],
)
def test_invalid_values_are_named(cwd: Path, text: str, message: str) -> None:
    path = cwd / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_runtime_config(path, environ={})


def test_invalid_environment_value_names_the_variable(cwd: Path) -> None:
    with pytest.raises(ConfigError, match=r"parallel_runs \(from \$PALAESTRIO_PARALLEL_RUNS\)"):
        load_runtime_config(environ={"PALAESTRIO_PARALLEL_RUNS": "-1"})


def test_a_given_file_must_exist(cwd: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read runtime configuration '.*nope\.yaml'"):
        load_runtime_config(cwd / "nope.yaml", environ={})


def test_logging_forms(cwd: Path) -> None:
    assert load_runtime_config(environ={"PALAESTRIO_LOGGING": "debug"}).logging == LoggingConfig(
        level="DEBUG"
    )
    mapped = load_runtime_config(
        environ={"PALAESTRIO_LOGGING": "{level: info, loggers: {palaestrio.governor: debug}}"}
    ).logging
    assert mapped == LoggingConfig(level="INFO", loggers={"palaestrio.governor": "DEBUG"})
    path = cwd / "c.yaml"
    path.write_text("logging:\n  version: 1\n  root: {level: INFO}\n")
    dict_config = load_runtime_config(path, environ={}).logging.dict_config
    assert dict_config == {"version": 1, "root": {"level": "INFO"}}


def test_empty_file_is_the_defaults(cwd: Path) -> None:
    path = cwd / "c.yaml"
    path.write_text("# nothing here\n")
    assert load_runtime_config(path, environ={}) == RuntimeConfig()
