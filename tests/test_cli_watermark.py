import json
import xml.etree.ElementTree as ET

import pytest

from vtrust.cli import run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("wm")
    assert run(["-q", "train", "--arch", "mlp", "--out", str(d / "plain.st")]) == 0
    assert (
        run(
            [
                "-q",
                "watermark",
                "embed",
                "--kind",
                "static",
                "--model",
                str(d / "plain.st"),
                "--out",
                str(d / "marked.st"),
                "--key-out",
                str(d / "key.json"),
                "--seed",
                "3",
            ]
        )
        == 0
    )
    return d


def test_verify_exit_codes_and_json(capsys, files):
    capsys.readouterr()
    assert (
        run(
            [
                "watermark",
                "verify",
                "--model",
                str(files / "marked.st"),
                "--key",
                str(files / "key.json"),
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["owned"] and result["ber"] == 0.0 and result["p_value"] < 1e-6
    assert (
        run(
            [
                "watermark",
                "verify",
                "--model",
                str(files / "plain.st"),
                "--key",
                str(files / "key.json"),
            ]
        )
        == 1
    )
    assert "not owned" in capsys.readouterr().out


def test_gate_passes_fails_and_writes_junit(capsys, files, tmp_path):
    marked, plain, key = (str(files / n) for n in ("marked.st", "plain.st", "key.json"))
    junit = tmp_path / "gate.xml"
    assert (
        run(
            [
                "-q",
                "gate",
                "watermark",
                "--model",
                marked,
                "--key",
                key,
                "--attack",
                "ftal",
                "--attack",
                "quantize",
                "--junit",
                str(junit),
            ]
        )
        == 0
    )
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert run(["-q", "gate", "watermark", "--model", plain, "--key", key]) == 1
    assert (
        run(
            [
                "-q",
                "gate",
                "watermark",
                "--model",
                marked,
                "--key",
                key,
                "--attack",
                "distill-soft",
                "--junit",
                str(junit),
                "--json",
            ]
        )
        == 1
    )
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["survives_all"] is False
    failure = ET.parse(junit).getroot().find("testcase[@name='distill-soft']/failure")
    assert failure is not None and "removed" in failure.get("message")


def test_gate_bad_input_exits_2(capsys, files, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code = run(["gate", "watermark", "--model", str(files / "marked.st"), "--key", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "not a vtrust watermark key" in err and err.count("\n") == 1
    code = run(
        [
            "gate",
            "watermark",
            "--model",
            str(files / "marked.st"),
            "--key",
            str(files / "key.json"),
            "--attack",
            "nope",
        ]
    )
    assert code == 2


def test_fingerprint_and_trace(capsys, files, tmp_path):
    registry = tmp_path / "reg.db"  # created on first use (its folder must exist)
    assert (
        run(
            [
                "-q",
                "watermark",
                "fingerprint",
                "--model",
                str(files / "plain.st"),
                "--users",
                "ann,bob,cy",
                "--registry",
                str(registry),
                "--out-dir",
                str(tmp_path),
                "--seed",
                "1",
                "--json",
            ]
        )
        == 0
    )
    copies = json.loads(capsys.readouterr().out)["copies"]
    assert (
        run(["watermark", "trace", copies["bob"]["file"], "--registry", str(registry), "--json"])
        == 0
    )
    ranking = json.loads(capsys.readouterr().out)["ranking"]
    assert ranking[0]["user"] == "bob" and ranking[0]["owned"]
    assert (
        run(["watermark", "trace", copies["bob"]["file"], "--registry", str(tmp_path / "none.db")])
        == 2
    )


def test_robustness_report(capsys, files, tmp_path):
    assert (
        run(
            [
                "-q",
                "watermark",
                "robustness",
                "--model",
                str(files / "marked.st"),
                "--key",
                str(files / "key.json"),
                "--attack",
                "prune-global",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["attacks"][0]["attack"] == "prune-global"
    assert (tmp_path / "robustness-prune-global.png").is_file()


def test_the_gate_without_attacks_runs_the_default_set_not_nothing(files, monkeypatch):
    """A gate that names no attack must not pass by testing nothing."""
    import vtrust.evaluation.watermark as robustness

    seen = []

    def capture(model, key, splits, entries, **kw):
        seen.extend(e.name for e in entries)
        return {"attacks": [], "baseline": {}, "survives_all": False}

    monkeypatch.setattr(robustness, "evaluate_robustness", capture)
    marked, key = str(files / "marked.st"), str(files / "key.json")
    assert run(["-q", "gate", "watermark", "--model", marked, "--key", key, "--json"]) == 1
    assert tuple(seen) == robustness.DEFAULT_ATTACKS and "fine-prune" in seen


def test_embed_an_entangled_mark_and_verify_it(capsys, files, tmp_path):
    common = ["watermark", "embed", "--kind", "dynamic", "--style", "entangled",
              "--model", str(files / "plain.st"), "--out", str(tmp_path / "ewe.st"),
              "--key-out", str(tmp_path / "ewe.json")]  # fmt: skip
    assert run(["-q", *common, "--triggers", "60", "--epochs", "10", "--json"]) == 0
    embedded = json.loads(capsys.readouterr().out)
    assert embedded["verification"]["owned"]
    verify = ["watermark", "verify", "--key", str(tmp_path / "ewe.json"), "--model"]
    assert run([*verify, str(tmp_path / "ewe.st")]) == 0
    assert run([*verify, str(files / "plain.st")]) == 1
    capsys.readouterr()
    (tmp_path / "ewe.json").unlink()
    assert run([*common, "--triggers", "5000"]) == 2  # more than the source class holds
    err = capsys.readouterr().err
    assert "source class" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ewe.json").exists()
