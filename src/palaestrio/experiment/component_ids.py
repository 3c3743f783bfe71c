"""Agents' sensor and actuator ids checked against what their environment will offer,
where the environment can tell without running (`Environment.known_ids`), so that a
typo (`myenv.42`) is reported with its file and line before any process starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..records import EnvironmentSpec
from .checks import Check
from .yamltree import Node

KnownIds = Mapping[str, tuple[frozenset[str], frozenset[str]]]
"""Environment uid -> (sensor ids, actuator ids), for environments that can tell."""

_SHOWN = 12
"""Ids listed in a message at most."""


def known_ids(environments: list[EnvironmentSpec] | None, check: Check) -> KnownIds:
    """The ids each environment of a phase declares (those that declare none: left out)."""
    known: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for environment in environments or []:
        if environment.environment.name in check.from_source:
            continue  # a palaestrAI environment, which declares none
        imported = check.import_class(environment.environment.name, False)
        if isinstance(imported, str):
            continue
        declare = getattr(imported[1], "known_ids", None)
        try:
            ids = declare(dict(environment.environment.params)) if callable(declare) else None
        except Exception:
            ids = None
        sensors, actuators = getattr(ids, "sensors", None), getattr(ids, "actuators", None)
        if sensors is not None and actuators is not None:
            known[environment.uid] = (frozenset(map(str, sensors)), frozenset(map(str, actuators)))
    return known


def check_known(entry: Node, value: str, what: str, known: KnownIds, check: Check) -> None:
    """Reports `value` (a `sensor` or `actuator` id) if its environment says it has none
    such."""
    for uid, (sensors, actuators) in known.items():
        if not value.startswith(uid + "."):
            continue
        offered = sensors if what == "sensor" else actuators
        local = value[len(uid) + 1 :]
        if local not in offered:
            check.at(
                entry,
                f"{what} {value!r} does not exist: environment {uid!r} offers {what}s "
                f"{_listed(uid, offered)}",
            )
        return


def _listed(uid: str, ids: Any) -> str:
    names = sorted(ids, key=lambda name: (len(name), name))
    shown = ", ".join(f"{uid}.{name}" for name in names[:_SHOWN])
    return shown + (f", … ({len(names)} in all)" if len(names) > _SHOWN else "") or "none"
