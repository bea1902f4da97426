import json

import pytest

from vtrust._io import atomic_write_bytes
from vtrust.report import Report, line_plot, markdown_table


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
