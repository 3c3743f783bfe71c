"""Optional packages the results commands need, imported only when asked for."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(RuntimeError):
    """An optional package is not installed; the message names the extra to install."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """`module`, imported; else `MissingExtra` naming `extra` (palaestrio[extra])."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtra(
            f"{purpose} needs the {module.split('.')[0]} package, which is not installed: "
            f"pip install 'palaestrio[{extra}]'"
        ) from error
