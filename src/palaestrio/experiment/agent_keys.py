"""An agent's optional `load` and `replay` keys (arsenAI writes both into every agent).

`replay` must be a list; palaestrio accepts an empty one and refuses entries (replaying
stored actions is not supported yet). `load` is palaestrAI's mapping of `agent`,
`experiment_run` and `phase` (each may be null or left out: see `BrainLoad`).
"""

from __future__ import annotations

from ..records import BrainLoad
from .checks import Check, check_fields, check_integer, check_list, check_string
from .yamltree import Node

AGENT_OPTIONAL_KEYS = frozenset({"load", "replay"})
_LOAD_KEYS = frozenset({"agent", "experiment_run", "phase"})


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
    fields = check_fields(node, check, frozenset(), _LOAD_KEYS)
    if fields is None:
        return False, None
    values: dict[str, str | int | None] = {}
    fine = True
    for key, child in fields.items():
        if key not in _LOAD_KEYS or child.value is None:
            fine = fine and key in _LOAD_KEYS
            continue
        value = check_integer(child, check, 0) if key == "phase" else check_string(child, check)
        fine = fine and value is not None
        values[key] = value
    if not fine:
        return False, None
    return True, BrainLoad(**values) if values else None  # type: ignore[arg-type]
