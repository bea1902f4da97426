"""Lazy package exports: a package names what it exports and from which submodule, and
the submodule is imported on first use — so importing the package (or a light sibling
module inside it) never pulls in torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``name`` from ``where[name]`` (a module path)."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
