"""A palaestrAI component class checked from source, without importing its module.

Importing hARL's brain means importing torch (2-4 s); the executor checks a file's
classes before anything starts and the governor imports them again to run them, so
the executor's import doubled that cost. `source_class` reads the class statement
and its bases' (following imports, never executing a module) and returns its
palaestrAI kind and its constructor's signature. It answers only when the source
says so plainly: one top-level binding per name, no decorators, metaclasses,
`__new__` or abstract methods left, every base resolved to a class statement. Any doubt,
and the caller imports the class as before; a class found wanting is imported too, so
that problems are reported by the same code, with the same messages. What no reading
of the source can tell (a module that raises when imported) is reported when the run
starts, by the governor that imports it.
"""

from __future__ import annotations

import ast
import importlib.machinery
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .palaestrai import LAZY_EXPORTS, palaestrai_base_kind

_TERMINAL = {("abc", "ABC"), ("builtins", "object")}
_DEPTH = 30
"""Imports and bases followed at most (a cycle in the source ends here)."""


@dataclass(frozen=True)
class SourceClass:
    kind: str
    """Its palaestrAI kind (a key of `kinds.KINDS`)."""
    signature: inspect.Signature
    """Its constructor's, as `inspect.signature` gives it (defaults are placeholders)."""


@dataclass(frozen=True)
class _ModuleRef:
    name: str


@dataclass(frozen=True)
class _ClassRef:
    module: str
    name: str
    node: ast.ClassDef | None
    """None for `object` and `abc.ABC`."""


_Ref = _ModuleRef | _ClassRef
_AMBIGUOUS: Any = object()


class _Module:
    def __init__(self, name: str, tree: ast.Module, package: bool) -> None:
        self.name = name
        self.package = package
        self.bindings: dict[str, Any] = {}
        self.imports: list[str] = []
        """Absolute modules its top level imports."""
        self.opaque = False
        """A star import or a module `__getattr__`: names may come from anywhere."""
        for statement in tree.body:
            self._bind(statement)

    def _bind(self, statement: ast.stmt) -> None:
        if isinstance(statement, ast.If) and _type_checking(statement.test):
            return  # not run: binds nothing
        names: list[tuple[str, Any]] = []
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                self.imports.append(alias.name)
                bound = alias.asname or alias.name.partition(".")[0]
                names.append((bound, _ModuleRef(alias.name if alias.asname else bound)))
        elif isinstance(statement, ast.ImportFrom):
            source = self._absolute(statement.module, statement.level)
            if source is None:
                self.opaque = True
                return
            self.imports.append(source)
            for alias in statement.names:
                if alias.name == "*":
                    self.opaque = True
                else:
                    names.append((alias.asname or alias.name, (source, alias.name)))
        elif isinstance(statement, ast.ClassDef):
            names.append((statement.name, statement))
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            self.opaque |= statement.name == "__getattr__"
            names.append((statement.name, statement))
        elif isinstance(statement, ast.Expr | ast.Pass):
            return
        else:  # assignments, compound statements: whatever they bind is not a plain class
            for node in ast.walk(statement):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
                    names.append((node.id, _AMBIGUOUS))
                elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    names.append((node.name, _AMBIGUOUS))
                elif isinstance(node, ast.Import | ast.ImportFrom):
                    self.opaque = True
        for name, value in names:
            self.bindings[name] = value if name not in self.bindings else _AMBIGUOUS

    def _absolute(self, module: str | None, level: int) -> str | None:
        if level == 0:
            return module
        parts = self.name.split(".") if self.package else self.name.split(".")[:-1]
        if level - 1 > len(parts) - 1:
            return None
        base = parts[: len(parts) - (level - 1)]
        return ".".join(base + ([module] if module else []))


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Reader:
    def __init__(self) -> None:
        self._specs: dict[str, Any] = {}
        self._modules: dict[str, _Module | None] = {}

    def spec(self, name: str) -> Any:
        """The module's spec as the import system finds it, without importing anything."""
        if name not in self._specs:
            self._specs[name] = self._find(name)
        return self._specs[name]

    def _find(self, name: str) -> Any:
        if name in sys.modules:  # None there blocks the import
            return getattr(sys.modules[name], "__spec__", None)
        parent, _, _ = name.rpartition(".")
        path = None
        if parent:
            parent_spec = self.spec(parent)
            if parent_spec is None or parent_spec.submodule_search_locations is None:
                return None
            path = list(parent_spec.submodule_search_locations)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            try:
                spec = find(name, path)
            except Exception:
                return None
            if spec is not None:
                return spec
        return None

    def module(self, name: str) -> _Module | None:
        if name not in self._modules:
            self._modules[name] = None  # a cycle reads as unknown
            self._modules[name] = self._parse(name)
        return self._modules[name]

    def _parse(self, name: str) -> _Module | None:
        spec = self.spec(name)
        origin = getattr(spec, "origin", None)
        if not isinstance(origin, str) or not origin.endswith(".py"):
            return None
        if not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None  # e.g. a loader that rewrites the source
        try:
            tree = ast.parse(Path(origin).read_bytes(), origin)
        except (OSError, SyntaxError, ValueError):
            return None
        module = _Module(name, tree, spec.submodule_search_locations is not None)
        parent = name.rpartition(".")[0]
        namespace = parent and getattr(self.spec(parent), "origin", None) is None
        parents_fine = not parent or namespace or self.module(parent) is not None
        imports_found = all(self.spec(imported.partition(".")[0]) for imported in module.imports)
        return module if parents_fine and imports_found else None

    def lookup(self, module_name: str, name: str, depth: int = 0) -> _Ref | None:
        """What `module_name.name` is, as far as the source tells."""
        if (module_name, name) in _TERMINAL:
            return _ClassRef(module_name, name, None)
        if depth > _DEPTH:
            return None
        lazy = LAZY_EXPORTS.get((module_name, name))
        if lazy is not None:
            return self.lookup(*lazy, depth + 1)
        module = self.module(module_name)
        if module is None:
            return None
        bound = module.bindings.get(name)
        if bound is None:
            if module.package and not module.opaque and self.spec(f"{module_name}.{name}"):
                return _ModuleRef(f"{module_name}.{name}")
            return None
        if isinstance(bound, ast.ClassDef):
            return _ClassRef(module_name, name, bound)
        if isinstance(bound, _ModuleRef):
            return bound if self.module(bound.name) is not None else None
        if isinstance(bound, tuple):
            source, imported = bound
            return self.lookup(source, imported, depth + 1)
        return None

    def expression(self, module_name: str, node: ast.expr, depth: int) -> _Ref | None:
        if isinstance(node, ast.Name):
            module = self.module(module_name)
            if module is not None and node.id not in module.bindings and not module.opaque:
                return self.lookup("builtins", node.id)
            return self.lookup(module_name, node.id, depth)
        if isinstance(node, ast.Attribute):
            owner = self.expression(module_name, node.value, depth)
            if isinstance(owner, _ModuleRef):
                return self.lookup(owner.name, node.attr, depth)
        return None

    def mro(self, cls: _ClassRef, depth: int = 0) -> list[_ClassRef] | None:
        """The class's method resolution order (C3), or None where the source is unclear."""
        if cls.node is None:
            return [cls]
        node = cls.node
        known_base = palaestrai_base_kind(cls.module, cls.name) is not None
        if node.keywords or (node.decorator_list and not known_base) or depth > _DEPTH:
            return None  # a palaestrAI base's decorator (its state machine) is known
        bases: list[_ClassRef] = []
        for expression in node.bases:
            base = self.expression(cls.module, expression, depth + 1)
            if not isinstance(base, _ClassRef):
                return None
            bases.append(base)
        if not bases:
            bases = [_ClassRef("builtins", "object", None)]
        orders: list[list[_ClassRef]] = []
        for base in bases:
            order = self.mro(base, depth + 1)
            if order is None:
                return None
            orders.append(order)
        merged = _c3([*orders, list(bases)])
        return None if merged is None else [cls, *merged]


def _c3(orders: list[list[_ClassRef]]) -> list[_ClassRef] | None:
    orders = [list(order) for order in orders if order]
    result: list[_ClassRef] = []
    while orders:
        for order in orders:
            head = order[0]
            if not any(head in other[1:] for other in orders):
                break
        else:
            return None  # inconsistent: Python would refuse the class
        result.append(head)
        orders = [[c for c in order if c != head] for order in orders]
        orders = [order for order in orders if order]
    return result


def _members(node: ast.ClassDef) -> dict[str, ast.stmt] | None:
    """The names a class statement's body binds, or None if it does more than define."""
    members: dict[str, ast.stmt] = {}
    for statement in node.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            members[statement.name] = statement
        elif isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                if not isinstance(target, ast.Name):
                    return None
                if isinstance(statement, ast.Assign) or statement.value is not None:
                    members[target.id] = statement
        elif not isinstance(statement, ast.Expr | ast.Pass):
            return None
    return members


def _abstract(statement: ast.stmt) -> bool:
    if not isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    for decorator in statement.decorator_list:
        name = decorator.id if isinstance(decorator, ast.Name) else ""
        name = decorator.attr if isinstance(decorator, ast.Attribute) else name
        if "abstract" in name:
            return True
    return False


_PLACEHOLDER = object()


def _signature(function: ast.FunctionDef | ast.AsyncFunctionDef) -> inspect.Signature:
    """The signature of `function` bound to an instance (its first parameter dropped)."""
    kind = inspect.Parameter
    arguments = function.args
    positional: list[tuple[ast.arg, inspect._ParameterKind]] = [
        (a, kind.POSITIONAL_ONLY) for a in arguments.posonlyargs
    ]
    positional += [(a, kind.POSITIONAL_OR_KEYWORD) for a in arguments.args]
    first_default = len(positional) - len(arguments.defaults)
    parameters = [
        kind(a.arg, k, default=_PLACEHOLDER if i >= first_default else kind.empty)
        for i, (a, k) in enumerate(positional)
    ][1:]
    if arguments.vararg is not None:
        parameters.append(kind(arguments.vararg.arg, kind.VAR_POSITIONAL))
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        placeholder = kind.empty if default is None else _PLACEHOLDER
        parameters.append(kind(argument.arg, kind.KEYWORD_ONLY, default=placeholder))
    if arguments.kwarg is not None:
        parameters.append(kind(arguments.kwarg.arg, kind.VAR_KEYWORD))
    return inspect.Signature(parameters)


def source_class(module_name: str, class_name: str) -> SourceClass | None:
    """`module_name:class_name` read from source (see the module's docstring), or None
    where the source leaves any doubt; never imports `module_name`."""
    reader = _Reader()
    found = reader.lookup(module_name, class_name)
    if not isinstance(found, _ClassRef) or found.node is None:
        return None
    order = reader.mro(found)
    if order is None:
        return None
    kind = None
    abstract: set[str] = set()
    defined: dict[str, ast.stmt] = {}
    for cls in order:
        if cls.node is None:
            continue
        members = _members(cls.node)
        if members is None:
            return None
        kind = kind or palaestrai_base_kind(cls.module, cls.name)
        abstract |= {name for name, statement in members.items() if _abstract(statement)}
        for name, statement in members.items():
            defined.setdefault(name, statement)
    if kind is None or {"__new__", "__signature__", "known_ids"} & defined.keys():
        return None
    if any(_abstract(defined[name]) for name in abstract):
        return None
    init = defined.get("__init__")
    if init is None:
        return SourceClass(kind, inspect.Signature())
    if not isinstance(init, ast.FunctionDef) or init.decorator_list:
        return None
    return SourceClass(kind, _signature(init))
