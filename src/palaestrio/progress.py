"""Progress of a run, seen from its record stream (a sink that passes records on)."""

from __future__ import annotations

import trio

from palaestrio.experiment.model import ExperimentRun
from palaestrio.messages import RunProgress
from palaestrio.records import EpisodeStarted, PhaseStarted, Record, RecordSink, WorldState


class ProgressTap:
    """Counts phases, episodes and steps of the records flowing through to `inner`.

    `changed` is set whenever the position moved; whoever reports progress replaces it
    with a fresh event after reading `progress()`.
    """

    def __init__(self, inner: RecordSink, instance_uid: str, run: ExperimentRun) -> None:
        self.inner = inner
        self.instance_uid = instance_uid
        self.phase_names = [phase.name for phase in run.phases]
        self.changed = trio.Event()
        self.phases = 0
        self.episodes = 0
        self.steps = 0
        self._position: tuple[int, int, int, int] | None = None
        self._last_step_key: tuple[int, int, int, int] | None = None

    async def emit(self, record: Record) -> None:
        if isinstance(record, WorldState):
            key = (record.phase, record.worker, record.episode, record.step)
            if key != self._last_step_key:
                self._last_step_key = key
                self._position = key
                self.steps += 1
                self.changed.set()
        elif isinstance(record, EpisodeStarted):
            self.episodes += 1
            self._position = (record.phase, record.worker, record.episode, 0)
            self.changed.set()
        elif isinstance(record, PhaseStarted):
            self.phases += 1
        await self.inner.emit(record)

    def progress(self) -> RunProgress | None:
        if self._position is None:
            return None
        phase, worker, episode, step = self._position
        return RunProgress(
            self.instance_uid,
            phase=phase,
            phase_name=self.phase_names[phase] if phase < len(self.phase_names) else "",
            worker=worker,
            episode=episode,
            step=step,
            steps_total=self.steps,
        )
