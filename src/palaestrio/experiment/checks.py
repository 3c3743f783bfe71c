"""Checks of single values in an experiment file's tree; each problem is recorded
once, with the place and line of what the user wrote."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ..components.names import (
    ComponentNameError,
    import_class,
    import_controller_class,
    palaestrai_installed,
    resolve_name,
)
from .errors import Problem
from .yamltree import Node

if TYPE_CHECKING:
    from ..components.source_check import SourceClass

_INT64 = (-(2**63), 2**64 - 1)


class Check:
    """Collects problems (each once) and remembers imported classes."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self._seen: set[tuple[str, int | None, str]] = set()
        self._classes: dict[tuple[str, bool], tuple[str, type[Any]] | str] = {}
        self._sources: dict[str, SourceClass | None] = {}
        self.from_source: set[str] = set()
        """Names accepted by reading their source (`source_class`), never imported."""

    def add(self, place: str, line: int | None, message: str) -> None:
        if (place, line, message) not in self._seen:
            self._seen.add((place, line, message))
            self.problems.append(Problem(self.source, place, line, message))

    def at(self, node: Node, message: str) -> None:
        self.add(node.place, node.line, message)

    def import_class(self, name: str, controller: bool) -> tuple[str, type[Any]] | str:
        key = (name, controller)
        if key not in self._classes:
            try:
                if controller:
                    self._classes[key] = import_controller_class(name)
                else:
                    self._classes[key] = (resolve_name(name), import_class(name))
            except ComponentNameError as error:
                self._classes[key] = str(error)
        return self._classes[key]

    def source_class(self, name: str) -> SourceClass | None:
        """The palaestrAI class `name` read from its source, when its module is not
        imported yet (else importing it costs nothing) and the source is plain."""
        if name not in self._sources:
            self._sources[name] = None
            module, _, attribute = resolve_name(name).partition(":")
            fresh = module not in sys.modules and not module.startswith("palaestrio")
            plain = attribute.isidentifier() and all(map(str.isidentifier, module.split(".")))
            if fresh and plain and palaestrai_installed():  # else no palaestrAI class
                from ..components.source_check import source_class

                self._sources[name] = source_class(module, attribute)
        return self._sources[name]


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return f"{kinds.get(type(value), 'a ' + type(value).__name__)} ({value!r})"


def check_mapping(node: Node, check: Check) -> dict[str, Node] | None:
    if isinstance(node.value, dict):
        return node.value
    check.at(node, f"expected a mapping, found {describe(node.value)}")
    return None


def check_fields(
    node: Node,
    check: Check,
    required: frozenset[str],
    optional: frozenset[str] = frozenset(),
    unsupported: frozenset[str] = frozenset(),
    missing_hint: str = "",
) -> dict[str, Node] | None:
    """The mapping at `node`, after reporting unknown, unsupported and missing keys."""
    mapping = check_mapping(node, check)
    if mapping is None:
        return None
    known = required | optional
    for key, child in mapping.items():
        if key in unsupported:
            check.at(child, f"{key!r} is not supported yet by palaestrio")
        elif key not in known:
            check.at(child, f"unknown key {key!r}; expected one of: {', '.join(sorted(known))}")
    for key in sorted(required - mapping.keys()):
        check.add(node.child_place(key), node.line, f"missing key {key!r}{missing_hint}")
    return mapping


def check_string(node: Node, check: Check) -> str | None:
    if isinstance(node.value, str) and node.value.strip():
        return node.value
    found = "an empty string" if node.value == "" else describe(node.value)
    check.at(node, f"expected a non-empty string, found {found}")
    return None


def check_integer(node: Node, check: Check, minimum: int | None = None) -> int | None:
    value = node.value
    if type(value) is not int:
        check.at(node, f"expected an integer, found {describe(value)}")
        return None
    if minimum is not None and value < minimum:
        check.at(node, f"must be at least {minimum}, found {value}")
        return None
    return value


def check_list(node: Node, check: Check, non_empty: bool = True) -> list[Node] | None:
    if not isinstance(node.value, list):
        check.at(node, f"expected a list, found {describe(node.value)}")
        return None
    if non_empty and not node.value:
        check.at(node, "expected at least one entry, found an empty list")
        return None
    return node.value


def check_plain_params(node: Node, check: Check) -> bool:
    """Whether `node` holds only data a run can carry (msgpack and JSON)."""
    value = node.value
    if isinstance(value, dict | list):
        children = value.values() if isinstance(value, dict) else value
        return all([check_plain_params(child, check) for child in children])
    if type(value) is int and not _INT64[0] <= value <= _INT64[1]:
        check.at(node, f"integer {value} is too large for a parameter")
        return False
    if value is None or type(value) in (bool, int, float, str):
        return True
    check.at(node, f"{describe(value)} cannot be a parameter; quote it to pass a string")
    return False


def merge_nodes(base: Node, override: Node) -> Node:
    """Deep merge: mappings key by key, anything else replaced by `override`."""
    if not (isinstance(base.value, dict) and isinstance(override.value, dict)):
        return override
    merged = dict(base.value)
    for key, child in override.value.items():
        merged[key] = merge_nodes(merged[key], child) if key in merged else child
    return Node(merged, override.place, override.line)
