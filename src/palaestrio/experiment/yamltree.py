"""YAML text to a tree of `Node`s that remember their place and line.

Every value carries the dotted place it was written at ("schedule[0].phase_0.seed") and
its line, so that a problem found after cascading still points at what the user wrote.
Duplicate keys, which PyYAML silently resolves to the last one, are problems here.

Hostile or careless input is bounded: aliases are expanded into at most `MAX_NODES`
values (a 500-byte "billion laughs" file would otherwise take gigabytes), a recursive
alias and a tag YAML's safe schema does not know (``!!python/object``) are problems
with their place and line, never a traceback or silently plain data.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SAFE_TAG_PREFIX = "tag:yaml.org,2002:"
_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
MAX_NODES = 100_000
"""Values a file may hold after aliases are expanded (real run files hold hundreds)."""


class _TooLarge(Exception):
    """Raised out of the recursion once the node budget is spent."""


class Node:
    """A value with its place and line; mappings and lists hold Nodes."""

    __slots__ = ("line", "place", "value")

    def __init__(self, value: Any, place: str, line: int | None) -> None:
        self.value = value
        self.place = place
        self.line = line

    def child_place(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.place}[{key}]"
        return f"{self.place}.{key}" if self.place else key

    def plain(self) -> Any:
        """The value as plain Python data (dicts, lists, scalars)."""
        if isinstance(self.value, dict):
            return {key: child.plain() for key, child in self.value.items()}
        if isinstance(self.value, list):
            return [child.plain() for child in self.value]
        return self.value


class YamlProblem(Exception):
    def __init__(self, place: str, line: int | None, message: str) -> None:
        super().__init__(message)
        self.place = place
        self.line = line
        self.message = message


def parse(text: str) -> tuple[Node | None, list[YamlProblem]]:
    """The tree of `text` (None if it is empty or unreadable) and the problems found."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        message = " ".join(part for part in (error.context, error.problem) if part)
        return None, [YamlProblem("", line, f"YAML syntax: {message}")]
    except yaml.YAMLError as error:
        return None, [YamlProblem("", None, f"YAML syntax: {error}")]
    if root is None:
        return None, []
    builder = _Builder()
    try:
        tree = builder.build(root, "", root.start_mark.line + 1)
    except _TooLarge as error:
        return None, [*builder.problems, *error.args]
    return tree, builder.problems


class _Builder:
    def __init__(self) -> None:
        self.problems: list[YamlProblem] = []
        self._constructor = SafeConstructor()
        self._budget = MAX_NODES
        self._open: set[int] = set()
        """Collections being built: meeting one again is a recursive alias."""

    def build(self, node: yaml.Node, place: str, line: int) -> Node:
        self._budget -= 1
        if self._budget < 0:
            raise _TooLarge(
                YamlProblem(
                    place,
                    line,
                    f"more than {MAX_NODES:,} values once aliases are expanded "
                    "(an alias bomb?): refused",
                )
            )
        if not isinstance(node, MappingNode | SequenceNode):
            return self._scalar(node, place, line)
        if node.tag not in _PLAIN_TAGS:
            self.problems.append(YamlProblem(place, line, f"unsupported YAML tag {node.tag!r}"))
            return Node(None, place, line)
        if id(node) in self._open:
            self.problems.append(YamlProblem(place, line, "a recursive alias (refers to itself)"))
            return Node(None, place, line)
        self._open.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, place, line)
            items = Node([], place, line)
            for index, item in enumerate(node.value):
                items.value.append(
                    self.build(item, items.child_place(index), item.start_mark.line + 1)
                )
            return items
        finally:
            self._open.discard(id(node))

    def _scalar(self, node: yaml.Node, place: str, line: int) -> Node:
        assert isinstance(node, ScalarNode)
        if not node.tag.startswith(_SAFE_TAG_PREFIX) or "python/" in node.tag:
            self.problems.append(YamlProblem(place, line, f"unsupported YAML tag {node.tag!r}"))
            return Node(None, place, line)
        try:
            value = self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as error:
            self.problems.append(YamlProblem(place, line, f"cannot read this value: {error}"))
            value = None
        return Node(value, place, line)

    def _mapping(self, node: MappingNode, place: str, line: int) -> Node:
        mapping = Node({}, place, line)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                continue
            if key_node.value in seen:
                self.problems.append(
                    YamlProblem(
                        mapping.child_place(key_node.value),
                        key_node.start_mark.line + 1,
                        f"duplicate key {key_node.value!r}",
                    )
                )
            seen.add(key_node.value)
        try:
            self._constructor.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        except yaml.YAMLError as error:
            self.problems.append(YamlProblem(place, line, f"cannot merge: {error}"))
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key = self.build(key_node, place, key_line).value
            if not isinstance(key, str):
                self.problems.append(
                    YamlProblem(place, key_line, f"keys must be strings; quote {key!r}")
                )
                key = str(key)
            mapping.value[key] = self.build(value_node, mapping.child_place(key), key_line)
        return mapping
