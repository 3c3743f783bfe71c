"""An agent's optional `load` and `replay` keys (arsenAI writes both into every agent).

`replay` must be a list; palaestrio accepts an empty one and refuses entries (replaying
stored actions is not supported yet). `load` is palaestrAI's mapping of `agent`,
`experiment_run` and `phase` (each may be null or left out: see `BrainLoad`). palaestrAI
3.5's schema also allows the replay selectors `instance`, `mode`, `strict`, `repeat`,
`sensors` and `actuators` there; its agents ignore them when loading a brain, so
palaestrio checks their types and ignores them too (a file palaestrAI accepts is
accepted).
"""

from __future__ import annotations

from ..records import BrainLoad
from .checks import Check, check_fields, check_integer, check_list, check_string, describe
from .yamltree import Node

AGENT_OPTIONAL_KEYS = frozenset({"load", "replay"})
_LOAD_KEYS = frozenset({"agent", "experiment_run", "phase"})
_REPLAY_SELECTORS = frozenset({"instance", "mode", "strict", "repeat", "sensors", "actuators"})


def check_replay(node: Node, check: Check) -> bool:
    """Whether `replay` is fine (an empty list, or null)."""
    if node.value is None:
        return True
    entries = check_list(node, check, non_empty=False)
    if entries is None:
        return False
    if entries:
        check.at(node, "replaying stored actions ('replay' with entries) is not supported yet")
        return False
    return True


def check_load(node: Node, check: Check) -> tuple[bool, BrainLoad | None]:
    """Whether `load` is fine, and what it says (None: nothing)."""
    if node.value is None:
        return True, None
    fields = check_fields(node, check, frozenset(), _LOAD_KEYS | _REPLAY_SELECTORS)
    if fields is None:
        return False, None
    values: dict[str, str | int | None] = {}
    fine = True
    for key, child in fields.items():
        if key in _REPLAY_SELECTORS:
            fine = _check_replay_selector(key, child, check) and fine
            continue
        if key not in _LOAD_KEYS or child.value is None:
            fine = fine and key in _LOAD_KEYS
            continue
        value = check_integer(child, check, 0) if key == "phase" else check_string(child, check)
        fine = fine and value is not None
        values[key] = value
    if not fine:
        return False, None
    return True, BrainLoad(**values) if values else None  # type: ignore[arg-type]


def _check_replay_selector(key: str, node: Node, check: Check) -> bool:
    """The types palaestrAI's schema gives the replay selectors (null allowed)."""
    value = node.value
    if value is None:
        return True
    if key == "strict":
        if type(value) is not bool:
            check.at(node, f"expected true or false, found {describe(value)}")
            return False
        return True
    if key == "repeat":
        return check_integer(node, check, 1) is not None
    if key in ("instance", "mode"):
        return check_string(node, check) is not None
    entries = check_list(node, check)
    if entries is None:
        return False
    names = [check_string(entry, check) for entry in entries]
    if None in names:
        return False
    if len(set(names)) != len(names):
        check.at(node, f"{key!r} names an id twice")
        return False
    return True
