"""Plots of a study's results over seeds: each point at its mean, its min–max as an
error bar. ``figures(study, across_seeds)`` gives ``(filename, figure, caption)`` for
the studies whose headline figures are curves."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from matplotlib.figure import Figure

from vtrust.evaluation.spread import is_spread
from vtrust.report import line_plot

Curve = tuple[list[float], list[float], list[float], list[float]]  # xs, means, lows, highs


def _centre(value: Any) -> float | None:
    return value["mean"] if is_spread(value) else value


def _curve(points: Iterable[Mapping[str, Any]], x: str, y: str) -> Curve:
    xs, means, lows, highs = [], [], [], []
    for point in points:
        centre, xv = _centre(point[y]), _centre(point[x])
        if centre is None or xv is None:
            continue
        xs.append(xv)
        means.append(centre)
        lows.append(point[y]["min"] if is_spread(point[y]) else centre)
        highs.append(point[y]["max"] if is_spread(point[y]) else centre)
    return xs, means, lows, highs


def _plot(curves: Mapping[str, Curve], **labels: Any) -> Figure:
    return line_plot({n: (c[0], c[1]) for n, c in curves.items()},
                     ranges={n: (c[2], c[3]) for n, c in curves.items()}, **labels)  # fmt: skip


def attacks(r: dict[str, Any]) -> list[tuple[str, Figure, str]]:
    curves = {name: _curve(a["curve"], "queries", "fidelity")
              for name, a in r["attacks"].items()
              if a["category"] == "extraction" and isinstance(a.get("curve"), list)}  # fmt: skip
    fig = _plot(curves, title="Fidelity vs queries (mean, min–max over seeds)",
                xlabel="queries", ylabel="fidelity", logx=True)  # fmt: skip
    return [("extraction-fidelity.png", fig, "thief fidelity against its query budget")]


def defenses(r: dict[str, Any]) -> list[tuple[str, Figure, str]]:
    rows: dict[str, list[Mapping[str, Any]]] = {}
    for row in r.get("poisoning", [])[1:]:  # the first row is the undefended point
        rows.setdefault(row["defense"], []).append(row)
    curves = {d: _curve(rs, "defender_accuracy", "thief_accuracy_probs") for d, rs in rows.items()}
    fig = _plot(curves, title="Prediction poisoning (mean, min–max over seeds)",
                xlabel="defender top-1 accuracy",
                ylabel="thief test accuracy (probabilities)")  # fmt: skip
    return [("poisoning_utility.png", fig, "thief accuracy against the defender's accuracy")]


def enclave(r: dict[str, Any]) -> list[tuple[str, Figure, str]]:
    by_fraction: dict[float, list[Mapping[str, Any]]] = {}
    for row in (row for row in r["stealing"] if row["split"].startswith("first:")):
        by_fraction.setdefault(row["fraction"], []).append(row)
    curves = {f"{100 * f:g} % of the attacker split":
              _curve(rows, "inside_units", "scratch_accuracy")
              for f, rows in by_fraction.items()}  # fmt: skip
    fig = _plot(curves, title="Thief from scratch vs the first k units inside",
                xlabel="units inside the enclave", ylabel="thief test accuracy")  # fmt: skip
    return [("stealing.png", fig, "a thief's accuracy against how much runs inside")]


FIGURES: dict[str, Callable[[dict[str, Any]], list[tuple[str, Figure, str]]]] = {
    "attacks": attacks,
    "defenses": defenses,
    "enclave": enclave,
}


def figures(study: str, across_seeds: dict[str, Any]) -> list[tuple[str, Figure, str]]:
    """The study's plots with error bars (none for studies without curves)."""
    make = FIGURES.get(study)
    return make(across_seeds) if make else []
