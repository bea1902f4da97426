"""Reports: stable JSON, Markdown summaries and PNG plots, all written atomically.

Plots use matplotlib's object API (no pyplot, no global backend state), so they work
headless and in threads.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from vtrust._io import atomic_write_bytes, atomic_write_json, atomic_write_text, output_folder


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats are shown with 4 significant digits."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` as PNG and write it atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def line_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    ranges: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> Figure:
    """One line per named ``(xs, ys)`` series; ``ranges[name] = (lows, highs)`` draws
    each point's range (e.g. min–max over seeds) as an error bar."""
    fig = Figure(figsize=(6, 4) if len(series) <= 4 else (8, 4))
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab20" if len(series) > 10 else "tab10"]
    for i, (label, (xs, ys)) in enumerate(series.items()):
        xs, ys = list(xs), list(ys)
        if ranges and label in ranges:
            lows, highs = ranges[label]
            errors = [[y - lo for y, lo in zip(ys, lows, strict=True)],
                      [hi - y for y, hi in zip(ys, highs, strict=True)]]  # fmt: skip
            ax.errorbar(xs, ys, yerr=errors, marker="o", markersize=3, capsize=3, label=label,
                        color=colours(i))  # fmt: skip
        else:
            ax.plot(xs, ys, marker="o", markersize=3, label=label, color=colours(i))
    if logx:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 4:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    elif len(series) > 1:
        ax.legend()
    return fig


def bar_plot(values: Mapping[str, float], *, title: str, ylabel: str, zoom: bool = False) -> Figure:
    """One labelled bar per entry of ``values``. ``zoom``: the y axis spans the values
    (with a margin) instead of starting at 0, so that 0.94 and 0.99 look different; the
    axis label then says where it starts."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    names = list(values)
    heights = [values[n] for n in names]
    bars = ax.bar(names, heights)
    ax.bar_label(bars, fmt="%.3f")
    if zoom and heights:  # fractions (all in [0, 1]) keep the axis within [0, 1]
        low, high = axis_span(heights, ceiling=1.0 if max(heights) <= 1 else None)
        ax.set_ylim(low, high)
        ylabel = f"{ylabel} (axis from {low:.2f})" if low > 0 else ylabel
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    return fig


def axis_span(
    values: Sequence[float], floor: float = 0.0, ceiling: float | None = None
) -> tuple[float, float]:
    """An axis range showing the differences between ``values``: their span plus a
    margin of half the span (at least 0.02) on each side, rounded out to 0.01, within
    ``floor`` and ``ceiling``."""
    low, high = min(values), max(values)
    margin = max(0.5 * (high - low), 0.02)
    top = math.ceil((high + margin) * 100) / 100
    return (max(floor, math.floor((low - margin) * 100) / 100),
            top if ceiling is None else min(ceiling, top))  # fmt: skip


def heatmap(
    values: Sequence[Sequence[float]],
    *,
    rows: Sequence[str],
    columns: Sequence[str],
    title: str,
    label: str,
) -> Figure:
    """A labelled heatmap of ``values[row][column]`` (NaN cells left blank)."""
    fig = Figure(figsize=(1.2 + 1.1 * len(columns), 1.2 + 0.5 * len(rows)))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), labels=list(columns), rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if v == v:  # not NaN
                ax.text(j, i, f"{v:.2f}", ha="center", va="center",
                        color="white" if v < 0.6 else "black", fontsize=8)  # fmt: skip
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(title)
    return fig


_TIMING = re.compile(
    r"(^seconds$|^stages$|_seconds$|_s$|_ms$|(^|_)ms_per_|_per_second$|_per_batch$|_over_"
    r"|^ratio|^speedup|_mb$)"
)


def is_timing_field(name: object) -> bool:
    """Whether a results field named ``name`` measures time (see :func:`without_timings`)."""
    return bool(_TIMING.search(str(name)))


def without_timings(data: Any) -> Any:
    """``data`` without the fields that measure time (``seconds``, ``*_s``, ``*_ms``,
    ``*_per_second``, ``*_per_batch``, per-stage ``stages``, time ratios such as
    ``field_over_torch``,
    ``ratio*``, ``speedup*``) and memory peaks (``*_mb``): what must repeat exactly
    when a study is rerun with the same seed."""
    if isinstance(data, dict):
        return {k: without_timings(v) for k, v in data.items() if not is_timing_field(k)}
    if isinstance(data, list):
        return [without_timings(v) for v in data]
    return data


class Report:
    """Collects a command's results and writes JSON, Markdown and plots into one folder.

    The JSON has sorted keys and is deterministic for deterministic results; figures are
    referenced from the Markdown by relative path.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self.sections: list[str] = []
        self.figures: dict[str, Figure] = {}

    def add_text(self, markdown: str) -> None:
        self.sections.append(markdown.rstrip() + "\n")

    def add_table(self, heading: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]):
        self.sections.append(f"## {heading}\n\n" + markdown_table(headers, rows))

    def add_figure(self, filename: str, fig: Figure, caption: str) -> None:
        self.figures[filename] = fig
        self.sections.append(f"![{caption}]({filename})\n")

    def markdown(self) -> str:
        return f"# {self.title}\n\n" + "\n".join(self.sections)

    def write(
        self,
        out_dir: str | Path,
        data: Mapping[str, Any],
        *,
        json_name: str = "report.json",
        markdown_name: str = "report.md",
    ) -> Path:
        """Write ``data`` as JSON, the Markdown, and every figure, into ``out_dir``
        (created with its parents)."""
        out = output_folder(out_dir)
        for filename, fig in self.figures.items():
            save_figure(fig, out / filename)
        atomic_write_json(out / json_name, dict(data))
        atomic_write_text(out / markdown_name, self.markdown())
        return out
