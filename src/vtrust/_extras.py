"""Optional dependencies: imported on first use, with an error that names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from vtrust.errors import MissingExtra


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise MissingExtra saying ``pip install 'vtrust[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{module} is not installed: pip install 'vtrust[{extra}]'") from None


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message (libraries' errors run long)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(exc).__name__
