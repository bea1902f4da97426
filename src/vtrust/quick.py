"""Smoke-test budgets, switched on by ``VTRUST_QUICK=1``: for checking that a script or a
pipeline is wired up (the README tour's test, a CI job's dry run), never for results.

Every training run is capped at :data:`EPOCHS` epochs and every extraction attack at
:data:`QUERIES` queries; every command says so on stderr. Verdicts and figures from a
quick run mean nothing — a watermark trained for two epochs may not be there at all.
"""

from __future__ import annotations

import os

EPOCHS = 5
QUERIES = 200


def enabled() -> bool:
    """Whether ``VTRUST_QUICK`` asks for smoke-test budgets (read at every call)."""
    return os.environ.get("VTRUST_QUICK", "") not in ("", "0")


def epochs(requested: int) -> int:
    """``requested`` training epochs, capped in a quick run."""
    return min(requested, EPOCHS) if enabled() else requested


def queries(requested: int) -> int:
    """``requested`` extraction queries, capped in a quick run."""
    return min(requested, QUERIES) if enabled() else requested


WARNING = (
    f"VTRUST_QUICK is set: smoke-test budgets (≤ {EPOCHS} epochs per training run, "
    f"≤ {QUERIES} queries per attack); results are not meaningful"
)
