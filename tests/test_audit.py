"""``vtrust audit`` on a deployed model: extraction, detectors, watermark, proofs."""

import json

from vtrust.cli import run
from vtrust.evaluation.audit import queries_to


def test_queries_to_reads_the_budget_curve():
    curve = [{"queries": 50, "fidelity": 0.5}, {"queries": 100, "fidelity": 0.92},
             {"queries": 200, "fidelity": 0.95}]  # fmt: skip
    assert queries_to(curve, 0.9) == 100 and queries_to(curve, 0.99) is None


def test_audit_reports_attacks_detectors_and_proofs(tmp_path, capsys):
    model = tmp_path / "q.vtm"
    assert run(["-q", "train", "--arch", "quad", "--epochs", "10", "--out", str(model)]) == 0
    capsys.readouterr()
    code = run(["-q", "audit", str(model), "--defense", "round-2", "--attack", "jbda",
                "--budget", "200", "--json"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["defenses"] == ["round-2"]
    (row,) = result["extraction"]
    assert row["attack"] == "jbda" and row["queries"] == 200
    assert set(row["caught_by"]) == {"prada", "shift", "extraction-warning"}
    assert 0 < row["stealing_progress"] <= 1  # 200 queries have taught some regions
    assert row["queries_to_90_fidelity"] is None or row["queries_to_90_fidelity"] <= 200
    assert result["proof"]["applicable"] and result["proof"]["verified"]
    substitutions = result["proof"]["substitutions"]
    assert {r["attack"] for r in substitutions} == {
        f"{s}-substitution" for s in ("circuit", "input", "pixel", "padding", "count")
    }
    assert not any(r["accepted"] for r in substitutions), substitutions
    assert result["watermark"] is None


def test_audit_of_a_missing_model_is_one_line(tmp_path, capsys):
    assert run(["audit", str(tmp_path / "nope.vtm")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
