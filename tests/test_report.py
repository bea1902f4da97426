import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust._io import atomic_write_bytes
from vtrust.report import Report, axis_span, bar_plot, line_plot, markdown_table


def test_markdown_table_formats_and_escapes():
    table = markdown_table(["a", "b"], [[1, 0.123456], ["x|y", 2.0]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.1235 |", "| x\\|y | 2 |"]


def test_report_writes_stable_json_markdown_and_png(tmp_path):
    report = Report("Title")
    report.add_table("T", ["k"], [[1]])
    report.add_figure(
        "curve.png",
        line_plot({"s": ([1, 2], [3, 4])}, title="t", xlabel="x", ylabel="y"),
        "a curve",
    )
    report.write(tmp_path, {"b": 1, "a": [0.5]})
    text = (tmp_path / "report.json").read_text()
    assert text.index('"a"') < text.index('"b"') and json.loads(text) == {"a": [0.5], "b": 1}
    assert "![a curve](curve.png)" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "curve.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError):  # NaN is not JSON: refused, and no file left behind
        report.write(tmp_path / "nan", {"x": float("nan")})
    assert not (tmp_path / "nan" / "report.json").exists()


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_a_zoomed_axis_holds_every_value_and_shows_their_spread(values):
    low, high = axis_span(values)
    assert 0 <= low <= min(values) and max(values) <= high
    assert axis_span(values, ceiling=1.0)[1] <= 1.0
    spread = max(values) - min(values)
    assert high - low <= 2 * spread + 0.06  # zoomed: the span, margins and rounding


def test_the_accuracy_plot_starts_where_the_values_are():
    fig = bar_plot({"a": 0.94, "b": 0.99}, title="t", ylabel="accuracy", zoom=True)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == pytest.approx(0.91) and "axis from 0.91" in ax.get_ylabel()


def test_a_one_seed_matrix_says_flagged_not_share_of_seeds(tmp_path):
    from vtrust.evaluation.report import write_report

    cell = {"fidelity": 0.5, "thief_accuracy": 0.5, "queries": 10, "flagged": True}
    for seeds in (1, 2):
        result = {"spec": {"target": "m.vtm", "defenses": ["prada"], "attacks": ["jbda"],
                           "seeds": seeds, "budget": 10},
                  "cells": [{"defense": "prada", "attack": "jbda", "seed": s, "result": cell}
                            for s in range(seeds)]}  # fmt: skip
        text = write_report(result, tmp_path / str(seeds)).read_text()
        assert ("share of seeds" in text) is (seeds > 1)
