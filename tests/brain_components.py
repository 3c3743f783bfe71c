"""A palaestrio brain that stores and loads its state, for the brain dump tests."""

from __future__ import annotations

from typing import Any, ClassVar

from palaestrio.components import Brain


class CountingBrain(Brain):
    """Counts its thoughts; its dump is the count."""

    loaded: ClassVar[list[int]] = []

    def __init__(self) -> None:
        self.count = 0

    def thinking(self, muscle_id: str, data_from_muscle: Any) -> Any:
        self.count += 1
        return None

    def store(self) -> None:
        self.store_dump(str(self.count).encode())

    def load(self) -> None:
        data = self.load_dump()
        assert data is not None
        self.count = int(data)
        CountingBrain.loaded.append(self.count)
