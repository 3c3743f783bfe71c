"""Package attributes that import their submodule on first use (PEP 562)."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # `typing` costs tens of ms before the CLI can take a ^C
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def lazy_attributes(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that finds `name` in submodule `where[name]` of `package`."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
