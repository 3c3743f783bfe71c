"""Executor updates fanned out to every open event stream.

`EventHub.update` is the executor's ``on_update`` callback (as for the terminal's live
table, `palaestrio.cli.live.RunTracker` turns updates into rows with phase, episode,
steps/s and ETA). Each subscriber keeps only the newest row per run until it reads: a
slow browser gets the current state of every run, never an unbounded backlog, and
a state change is never overtaken by an older row of the same run.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import trio

from palaestrio.cli.live import RunRow, RunTracker

if TYPE_CHECKING:
    from palaestrio.executor import ExperimentRunRuntimeInformation

KEEPALIVE_SECONDS = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""


def live_fields(row: RunRow, now: float) -> dict[str, Any]:
    """What the executor knows beyond the store: where a run is and how fast it goes."""
    rate, eta = row.rate(now), row.eta(now)
    return {
        "phase": row.phase,
        "episode": row.episode,
        "step": row.step,
        "total_steps": row.total,
        "steps_per_second": None if rate is None else round(rate, 1),
        "eta_seconds": None if eta is None else round(eta, 1),
    }


class Subscriber:
    def __init__(self) -> None:
        self.pending: dict[str, dict[str, Any]] = {}
        self.wake = trio.Event()


class EventHub:
    def __init__(self) -> None:
        self.tracker = RunTracker()
        self.infos: dict[str, ExperimentRunRuntimeInformation] = {}
        self._subscribers: set[Subscriber] = set()
        self.delivered = 0
        """Events written to streams (for the benchmark)."""

    def update(self, info: ExperimentRunRuntimeInformation) -> None:
        self.infos[info.instance_uid] = info
        row, _ = self.tracker.track(info)
        if not self._subscribers:
            return
        event = self.event(info, row)
        for subscriber in self._subscribers:
            subscriber.pending.pop(info.instance_uid, None)  # keep order: newest last
            subscriber.pending[info.instance_uid] = event
            subscriber.wake.set()

    def event(self, info: ExperimentRunRuntimeInformation, row: RunRow) -> dict[str, Any]:
        run = info.experiment_run
        return {
            "instance_uid": info.instance_uid,
            "run_uid": run.uid,
            "experiment_uid": run.experiment_uid or run.uid,
            "status": str(info.status),
            "reason": info.reason,
            "steps": row.steps,
            "cancellable": not info.is_done,
            **live_fields(row, time.monotonic()),
        }

    def live(self, instance_uid: str) -> dict[str, Any] | None:
        row = self.tracker.rows.get(instance_uid)
        return None if row is None else live_fields(row, time.monotonic())

    async def stream(self) -> AsyncIterator[bytes]:
        """Server-Sent Events: ``event: run`` with one run's row as JSON, per change."""
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        try:
            yield b"retry: 2000\n\n"
            while True:
                with trio.move_on_after(KEEPALIVE_SECONDS):
                    await subscriber.wake.wait()
                subscriber.wake = trio.Event()
                events, subscriber.pending = subscriber.pending, {}
                if not events:
                    yield b": keepalive\n\n"
                    continue
                chunk = b"".join(
                    b"event: run\ndata: " + json.dumps(event).encode() + b"\n\n"
                    for event in events.values()
                )
                self.delivered += len(events)
                yield chunk
        finally:
            self._subscribers.discard(subscriber)
