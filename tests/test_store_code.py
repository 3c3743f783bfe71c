"""The store's code stays in pieces one can read: modules of at most 400 lines, functions
of at most 60 (the record hot path may be longer where its docstring says why)."""

from __future__ import annotations

import ast
from pathlib import Path

import palaestrio.store

STORE = Path(palaestrio.store.__file__).parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_modules_and_functions_are_small() -> None:
    too_long = []
    for path in sorted(STORE.glob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            documented = "hot path" in (ast.get_docstring(node) or "")
            if lines > MAX_FUNCTION_LINES and not documented:
                too_long.append(f"{path.name}:{node.lineno} {node.name}: {lines} lines")
    assert not too_long
