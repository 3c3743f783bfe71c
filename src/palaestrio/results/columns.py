"""A step table's value columns (`sensor.<id>`, `setpoint.<id>`, `reward.<id>`): typed
after sample rows, then filled row by row (the hot loop of an export)."""

from __future__ import annotations

from typing import Any

import msgspec

from .tables import Kind, kind_of

VALUE_PREFIXES = ("sensor", "setpoint", "reward")

_encode = msgspec.json.Encoder().encode


_ACCEPTS: dict[Kind, tuple[type, ...]] = {"number": (int, float), "bool": (bool,), "text": (str,)}
"""The value types a value column holds as they are (`json` columns hold any, encoded)."""


class ValueColumns:
    """The value columns (`sensor.<id>`, ...) of a table, and how a row's values fill them."""

    def __init__(self) -> None:
        self.kinds: dict[str, Kind] = {}
        self._unknown: set[str] = set()
        """Columns seen only with None so far."""
        self._slots: list[dict[str, tuple[int, tuple[type, ...] | None]]] | None = None

    def learn(self, values: tuple[Any, ...]) -> None:
        for prefix, data in zip(VALUE_PREFIXES, values, strict=True):
            for key, value in (data or {}).items():
                name = f"{prefix}.{key}"
                if value is None:
                    if name not in self.kinds:
                        self.kinds[name] = "json"
                        self._unknown.add(name)
                    continue
                kind = kind_of(value)
                if name in self._unknown:
                    self._unknown.discard(name)
                    self.kinds[name] = kind
                elif self.kinds.setdefault(name, kind) != kind:
                    self.kinds[name] = "json"

    def columns(self) -> list[tuple[str, Kind]]:
        return [*sorted(self.kinds.items()), ("other", "json")]

    def _slots_by_prefix(self) -> list[dict[str, tuple[int, tuple[type, ...] | None]]]:
        """Per prefix: key -> (cell position, types taken as they are; None: JSON)."""
        slots: list[dict[str, tuple[int, tuple[type, ...] | None]]] = [{} for _ in VALUE_PREFIXES]
        for position, name in enumerate(sorted(self.kinds)):
            prefix, key = name.split(".", 1)
            kind = self.kinds[name]
            slots[VALUE_PREFIXES.index(prefix)][key] = (position, _ACCEPTS.get(kind))
        return slots

    def cells(self, values: tuple[Any, ...]) -> list[Any]:
        """The row's value cells (in `columns` order); the hot loop of an export."""
        if self._slots is None:  # learning is over
            self._slots = self._slots_by_prefix()
        cells: list[Any] = [None] * (len(self.kinds) + 1)
        other = {}
        for prefix, slots, data in zip(VALUE_PREFIXES, self._slots, values, strict=True):
            if not data:
                continue
            for key, value in data.items():
                slot = slots.get(key)
                if slot is None:
                    other[f"{prefix}.{key}"] = value
                elif value is None:
                    continue
                elif slot[1] is None:
                    cells[slot[0]] = _encode(value).decode()
                elif type(value) in slot[1]:
                    cells[slot[0]] = value
                else:
                    other[f"{prefix}.{key}"] = value
        cells[-1] = _encode(other).decode() if other else None
        return cells
