"""Test components the chaos suite's runs import by name (`chaos.components:...`)."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from palaestrio.simulation import ActuatorInformation, DummyEnvironment, EnvironmentState


class HangingEnvironment(DummyEnvironment):
    """Steps with a trio sleep of `delay`, then blocks the governor's event loop in
    update number `hang_at` (1-based), after creating `marker`; not again once
    `marker` exists (a resumed batch finishes)."""

    def __init__(
        self,
        uid: str,
        seed: int,
        hang_at: int = 10,
        marker: str = "",
        delay: float = 0.01,
        max_iter: int = 50,
    ) -> None:
        super().__init__(uid, seed, max_iter=max_iter)
        self.hang_at = hang_at
        self.marker = Path(marker)
        self.delay = delay
        self.updates = 0

    async def update(self, actuators: list[ActuatorInformation]) -> EnvironmentState:  # type: ignore[override]
        self.updates += 1
        if self.updates == self.hang_at and not self.marker.exists():
            self.marker.write_text(str(time.time()))
            time.sleep(600)  # noqa: ASYNC251 (the hang is the point)
        await trio.sleep(self.delay)
        return super().update(actuators)
