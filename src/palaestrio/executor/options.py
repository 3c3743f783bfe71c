"""Every grace period, timeout and heartbeat of the executor, in one place."""

from __future__ import annotations

import dataclasses

from palaestrio.mdp import protocol as mdp
from palaestrio.mdp.broker_core import (
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_WAITING_BYTES,
    DEFAULT_MAX_WAITING_REQUESTS,
    DEFAULT_REQUEST_EXPIRY,
)


@dataclasses.dataclass(frozen=True)
class ExecutorOptions:
    cancel_grace: float = 5.0
    """Seconds a governor has to stop at a step boundary after a shutdown request."""
    term_grace: float = 1.0
    """Seconds between SIGTERM and SIGKILL when the graceful way did not work."""
    start_timeout: float = 60.0
    """Seconds a new governor has to answer the start request."""
    finalize_grace: float = 5.0
    """Seconds recording a run's final status may take during shutdown."""
    heartbeat_interval: float = mdp.DEFAULT_HEARTBEAT_INTERVAL
    heartbeat_liveness: int = mdp.DEFAULT_HEARTBEAT_LIVENESS
    lease_seconds: float = 30.0
    """How long the store trusts this executor between lease renewals: after that
    its unfinished runs count as lost (what works across hosts)."""
    governor_log_level: str = "INFO"
    retries: int = 0
    """How often a run that ended `error` is run again (each attempt a new instance);
    never a cancelled run, never while the executor shuts down."""
    retry_backoff: float = 1.0
    """Seconds before the first retry, doubling for each further one ..."""
    retry_backoff_max: float = 60.0
    """... up to this."""
    run_log_dir: str | None = None
    """Where each run's full governor output goes (None: see `palaestrio.store.run_logs`)."""
    run_log_max_bytes: int = 1 << 30
    """A run's log file ends, marked truncated, at this size."""

    store_write_retries: int = 20
    """Failed writes in a row (a full disk, a read-only file system) the store retries
    before it gives up and the runs end `error`."""
    store_write_retry_seconds: float = 30.0
    """The longest the store keeps retrying failed writes before it gives up."""
    store_restarts: int = 3
    """How often the store process may be restarted (it crashed) within
    `store_restart_seconds` before the executor gives up on it."""
    store_restart_seconds: float = 60.0
    broker_max_waiting_requests: int = DEFAULT_MAX_WAITING_REQUESTS
    """Requests one service's queue holds while they wait for a worker; more are refused."""
    broker_max_waiting_bytes: int = DEFAULT_MAX_WAITING_BYTES
    """Bytes of the requests one service's queue holds."""
    broker_max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    """Bytes of the requests all queues hold together."""
    broker_request_expiry: float = DEFAULT_REQUEST_EXPIRY
    """Seconds a request waits for a worker before the broker drops it."""
    warm_governors: int = 2
    """RunGovernors started ahead, while earlier runs execute, for runs waiting for a
    slot (at most as many as wait); 0: each starts with its run. Only with a launcher
    that allows it (`warm_start`: the local one)."""

    def __post_init__(self) -> None:
        if self.retries < 0 or self.run_log_max_bytes < 0:
            raise ValueError("retries and run_log_max_bytes must not be negative")
        for name in (
            "cancel_grace",
            "term_grace",
            "start_timeout",
            "finalize_grace",
            "retry_backoff",
            "retry_backoff_max",
            "store_write_retries",
            "store_write_retry_seconds",
            "store_restarts",
            "store_restart_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")
        for name in (
            "broker_max_waiting_requests",
            "broker_max_waiting_bytes",
            "broker_max_queued_bytes",
            "broker_request_expiry",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.warm_governors < 0:
            raise ValueError(f"warm_governors must not be negative, not {self.warm_governors}")
        if self.heartbeat_interval <= 0 or self.heartbeat_liveness < 1:
            raise ValueError("heartbeats need an interval > 0 and a liveness >= 1")

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before running attempt `attempt` + 1 (exponential, capped)."""
        return float(min(self.retry_backoff_max, self.retry_backoff * 2 ** (attempt - 1)))

    @property
    def shutdown_budget(self) -> float:
        """The longest an orderly shutdown of the runs may take: services stay up for
        it, and no longer."""
        return self.cancel_grace + self.term_grace + 2 * self.finalize_grace
