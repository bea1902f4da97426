"""Results over several seeds: one summary tree of means and spreads, and the check that
a rerun stays within the spread of a committed summary.

A study run once per seed gives one JSON tree per seed, all of the same shape.
:func:`summarise_runs` walks them together and keeps the shape: a number that differs
between seeds becomes a *spread* ``{"mean", "min", "max", "n", "values"}`` (``missing``
counts the seeds where it was ``null``, e.g. an attack no detector flagged), a number
the same in every seed stays that number, a flag that differs becomes
``{"true": k, "n": n}`` (``missing``: seeds where it was ``null``), and anything
else that differs (a name, lists of different lengths) is kept per seed as
``{"per_seed": [...]}``. Timing fields (the names
:func:`vtrust.report.without_timings` sets aside) are summarised like any number but
never checked.

:func:`deviations` compares a new summary with a reference one and names every figure
that left the reference's spread: a spread's new mean must lie within the reference's
``[min, max]``, a fixed number must be equal (within a relative ``tolerance``), flags
and names must be equal — except that a single run may give any flag or name one of the
seeds gave.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from vtrust.report import is_timing_field

SPREAD_KEYS = frozenset({"mean", "min", "max", "n", "values"})
_COUNT_KEYS = frozenset({"true", "n", "missing"})


def is_spread(value: Any) -> bool:
    """Whether ``value`` is a spread made by :func:`summarise_runs`."""
    return isinstance(value, dict) and value.keys() >= SPREAD_KEYS


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def spread(values: Sequence[float | int | None]) -> dict[str, Any]:
    """Mean, minimum and maximum of the non-null ``values``, with the values themselves
    (in seed order) and how many were null."""
    present = [v for v in values if v is not None]
    if not present:
        raise ValueError("a spread needs at least one value")
    out: dict[str, Any] = {
        "mean": math.fsum(present) / len(present),
        "min": min(present),
        "max": max(present),
        "n": len(present),
        "values": list(values),
    }
    if len(present) < len(values):
        out["missing"] = len(values) - len(present)
    return out


def summarise_runs(runs: Sequence[Any]) -> Any:
    """One tree for several runs of the same shape (see the module docstring)."""
    if not runs:
        raise ValueError("nothing to summarise")
    first = runs[0]
    if all(isinstance(r, dict) for r in runs):
        keys = list(first) + [k for r in runs[1:] for k in r if k not in first]
        return {
            k: summarise_runs([r[k] for r in runs if k in r])
            if all(k in r for r in runs)
            else {"per_seed": [r.get(k) for r in runs]}
            for k in keys
        }
    if all(isinstance(r, list) for r in runs):
        if len({len(r) for r in runs}) == 1:
            return [summarise_runs(list(items)) for items in zip(*runs, strict=True)]
        return {"per_seed": list(runs)}
    if all(r is None or _is_number(r) for r in runs) and any(r is not None for r in runs):
        if all(r == first for r in runs):
            return first
        return spread(runs)
    if all(r == first for r in runs):
        return first
    if all(r is None or isinstance(r, bool) for r in runs):
        flags = [r for r in runs if r is not None]
        count = {"true": sum(flags), "n": len(flags)}
        return count | ({"missing": len(runs) - len(flags)} if len(flags) < len(runs) else {})
    return {"per_seed": list(runs)}


def deviations(reference: Any, new: Any, *, tolerance: float = 1e-9, path: str = "") -> list[str]:
    """Every figure of ``new`` outside what ``reference`` states, as ``path: reason``
    lines (empty when the rerun reproduced). Timing fields are skipped; a figure the
    reference does not have is not checked."""
    found: list[str] = []
    where = path or "(top)"
    if is_spread(reference):
        value = new["mean"] if is_spread(new) else new
        if not _is_number(value):
            return [f"{where}: expected a number within [{reference['min']}, "
                    f"{reference['max']}], got {value!r}"]  # fmt: skip
        slack = tolerance * max(abs(reference["min"]), abs(reference["max"]), 1.0)
        if not reference["min"] - slack <= value <= reference["max"] + slack:
            found.append(f"{where}: {value:.6g} outside the committed spread "
                         f"[{reference['min']:.6g}, {reference['max']:.6g}]")  # fmt: skip
        return found
    if isinstance(reference, dict) and set(reference) == {"per_seed"}:
        if new == reference or (not isinstance(new, dict) and new in reference["per_seed"]):
            return []
        return [f"{where}: {new!r} is none of the committed {reference['per_seed']!r}"]
    if isinstance(reference, dict) and {"true", "n"} <= set(reference) <= _COUNT_KEYS:
        if new is None or isinstance(new, bool) or new == reference:  # one run: any seen
            return []
        return [f"{where}: {new!r} differs from the committed {reference!r}"]
    if isinstance(reference, dict):
        if not isinstance(new, dict):
            return [f"{where}: expected a mapping, got {type(new).__name__}"]
        for key, ref_value in reference.items():
            if is_timing_field(key):
                continue
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                found.append(f"{sub}: missing from the rerun")
                continue
            found += deviations(ref_value, new[key], tolerance=tolerance, path=sub)
        return found
    if isinstance(reference, list):
        if not isinstance(new, list) or len(new) != len(reference):
            return [f"{where}: expected a list of {len(reference)}, got {_describe(new)}"]
        for i, (r, n) in enumerate(zip(reference, new, strict=True)):
            found += deviations(r, n, tolerance=tolerance, path=f"{path}[{i}]")
        return found
    if _is_number(reference):
        value = new["mean"] if is_spread(new) else new
        if not _is_number(value):
            return [f"{where}: expected {reference!r}, got {value!r}"]
        if not math.isclose(value, reference, rel_tol=tolerance, abs_tol=tolerance):
            found.append(f"{where}: {value!r} differs from the committed {reference!r}")
        return found
    if reference != new:
        found.append(f"{where}: {new!r} differs from the committed {reference!r}")
    return found


def _describe(value: Any) -> str:
    return f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__
