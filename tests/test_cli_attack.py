import json

import pytest

from vtrust.cli import run


@pytest.fixture(scope="module")
def softmax_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "softmax.safetensors"
    assert run(["-q", "train", "--arch", "softmax", "--out", str(path)]) == 0
    return path


def test_attack_list(capsys):
    assert run(["attack", "list", "--json"]) == 0
    names = {e["name"] for e in json.loads(capsys.readouterr().out)["attacks"]}
    assert {"eqsolve", "jbda", "knockoff-natural-2k", "ftal", "prune-layer", "quantize"} <= names


def test_attack_run_json_and_report(capsys, softmax_file, tmp_path):
    code = run(
        [
            "-q",
            "attack",
            "run",
            "eqsolve",
            "--target",
            str(softmax_file),
            "--json",
            "--out",
            str(tmp_path),
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {"thief_accuracy", "fidelity", "queries", "seconds"} <= set(result)
    assert result["fidelity"] == 1.0 and result["queries"] == 65
    assert json.loads((tmp_path / "report.json").read_text())["queries"] == 65
    assert (tmp_path / "curve.png").read_bytes().startswith(b"\x89PNG")


def test_attack_run_reports_defense_flags(capsys, softmax_file):
    code = run(
        [
            "-q",
            "attack",
            "run",
            "eqsolve",
            "--target",
            str(softmax_file),
            "--defense",
            "limit-1k",
            "--defense",
            "round-2",
            "--budget",
            "2000",
            "--json",
            "--no-curve",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["defenses"] == {
        "limit-1k": {"flagged": False, "at_query": None, "ids_flagged": 0, "ids": 1},
        "round-2": {"flagged": False, "at_query": None, "ids_flagged": 0, "ids": 1},
    }
    assert result["fidelity"] < 1.0  # rounding breaks exact equation solving


def test_removal_attack_curve(capsys, softmax_file, tmp_path):
    code = run(
        [
            "-q",
            "attack",
            "run",
            "quantize",
            "--target",
            str(softmax_file),
            "--json",
            "--out",
            str(tmp_path),
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["category"] == "removal"
    assert [row["strength"] for row in result["curve"]] == [8.0, 6.0, 4.0, 3.0, 2.0]
    assert "sparsity" not in result and result["queries"] == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["attack", "run", "nope", "--target", "{m}"], "no attacks entry named 'nope'"),
        (["attack", "run", "ftal", "--target", "{m}", "--defense", "round-2"], "do not apply"),
        (["attack", "run", "jbda", "--target", "{m}", "--defense", "nope"], "no defenses entry"),
        (["attack", "run", "jbda", "--target", "/no/file"], "cannot read model file"),
        (["attack", "run", "jbda", "--target", "{m}", "--budget", "0"], "--budget"),
        (["attack", "run", "ambiguity", "--target", "{m}"], "forges a watermark key"),
        (["attack", "run", "input-substitution", "--target", "{m}"], "`vtrust audit` runs it"),
    ],
)
def test_attack_errors(capsys, softmax_file, args, message):
    code = run([a.replace("{m}", str(softmax_file)) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
