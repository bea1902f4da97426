"""The one ownership verdict: calibration, Bonferroni combination, the owner's material,
the null population and the `vtrust ownership` commands."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust.cli import run
from vtrust.errors import InputError
from vtrust.ownership.evidence import OwnerSide, dawn_evidence
from vtrust.ownership.null_population import members, population, training_data
from vtrust.ownership.verdict import Evidence, KindCalibration, calibrate_kinds, combine


def test_bonferroni_over_the_kinds_and_grinding_for_keyed_marks():
    evidence = [Evidence("dawn", 1e-8), Evidence("dataset-inference", 0.3)]
    verdict = combine(evidence, 1e-6)
    assert verdict.owned and math.isclose(verdict.combined_p_value, 2e-8)
    assert not combine([Evidence("dawn", 6e-7), Evidence("dataset-inference", 0.3)], 1e-6).owned
    keyed = combine([Evidence("static", 1e-30)], 1e-6)  # × 2^64 ≈ 1.8e-11
    assert keyed.owned and math.isclose(keyed.kinds[0]["adjusted_p_value"], 1e-30 * 2.0**64)
    assert not combine([Evidence("trigger", 1e-20)], 1e-6).owned  # 1e-20 · 2^64 > 1e-6
    with pytest.raises(InputError):
        combine([Evidence("dawn", 0.1), Evidence("dawn", 0.2)], 1e-6)
    with pytest.raises(InputError):
        combine([], 1e-6)
    with pytest.raises(InputError):
        Evidence("dawn", 1.5)
    with pytest.raises(InputError):
        Evidence("fingerprint", 0.1)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0.0, 3.0), min_size=2, max_size=30), st.floats(1e-300, 1.0))
def test_calibration_never_makes_a_test_more_confident(null_scores, p):
    """Law: the calibrated p-value is ≥ the test's own, and the threshold is exact: a
    p-value at it is calibrated to ≤ alpha."""
    cal = KindCalibration("dataset-inference", tuple(null_scores))
    assert cal.calibrated(p) >= p
    threshold = cal.threshold(1e-3)
    assert threshold <= 1e-3
    assert cal.calibrated(threshold) <= 1e-3 * (1 + 1e-9)


def test_a_test_that_fires_on_independent_models_is_penalised():
    """Null models that give p ≈ 1e-3 (a test invalid for them): the same p on a
    suspect is then no evidence, and where the null models lie the threshold moves
    far below alpha."""
    cal = calibrate_kinds([[Evidence("dataset-inference", 10.0**-s)] for s in (2.5, 3, 3.5, 3)])
    kind = cal["dataset-inference"]
    assert kind.calibrated(1e-3) > 0.3
    assert kind.threshold(0.01) < 0.01 * 0.02  # a p of 1e-2 / 1e-3 is what null models give
    assert kind.threshold(1e-6) == 1e-6  # far in the tail the test's own p decides


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_the_combined_rule_keeps_its_false_positive_rate(seed, dependent):
    """Under the null (uniform p-values, independent or all equal) the verdict fires at
    most at rate fpr: 4,000 simulated suspects at fpr 0.05."""
    rng = np.random.default_rng(seed)
    kinds = ("dawn", "dataset-inference", "trigger", "static")
    fired = 0
    for _ in range(4000):
        u = np.full(4, rng.random()) if dependent else rng.random(4)
        # keyed kinds are given as p / 2^64 so their adjusted p is the uniform draw
        evidence = [
            Evidence(k, float(p) / (2.0**64 if k in ("trigger", "static") else 1.0))
            for k, p in zip(kinds, u, strict=True)
        ]
        fired += combine(evidence, 0.05).owned
    assert fired / 4000 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 4000)


def test_null_members_never_train_on_the_victim_split(digits):
    chosen = members(12)
    assert {m.arch for m in chosen} == {"mlp", "cnn", "softmax"}
    assert {m.data for m in chosen} == {"attacker", "attacker-3/4"}
    victim_rows = {row.tobytes() for row in digits.victim.x}
    for member in chosen[:6]:
        data = training_data(digits, member)
        assert not victim_rows & {row.tobytes() for row in data.x}
        assert len(data) in (len(digits.attacker), 3 * len(digits.attacker) // 4)
    with pytest.raises(InputError):
        members(0)


def test_the_null_population_is_cached_and_reloaded(digits, tmp_path, monkeypatch):
    first = population(digits, 3, cache=tmp_path, archs=("softmax",))
    assert len(list(tmp_path.glob("*.safetensors"))) == 3
    import vtrust.models as models

    def no_training(*args, **kwargs):
        raise AssertionError("a cached member was trained again")

    monkeypatch.setattr(models, "fit", no_training)
    again = population(digits, 3, cache=tmp_path, archs=("softmax",))
    for (_, a), (_, b) in zip(first, again, strict=True):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert x.equal(y), name
    assert json.loads((tmp_path / "manifest.json").read_text())["members"][0]["arch"] == "softmax"
    from vtrust.data import load_dataset

    with pytest.raises(InputError, match="other data"):
        population(load_dataset("digits", seed=1), 3, cache=tmp_path, archs=("softmax",))


def test_the_owner_side_refuses_evidence_it_has_no_material_for(digits, small_mlp):
    side = OwnerSide(digits)
    assert side.available() == ()
    with pytest.raises(InputError, match="no material"):
        side.evidence(small_mlp, ["dawn"])
    with pytest.raises(InputError, match="dataset inference needs"):
        OwnerSide.with_dataset_inference(small_mlp, digits, samples=400)


def test_answer_watermark_evidence_names_the_memorising_thief_among_clients():
    """A suspect repeating one client's planted answers: the verdict's DAWN p-value is
    the client's own test times the clients, doubled — still far below 1e-6."""
    from test_answer_marks import Repeats, images, oracle_with_marks

    oracle, defense, victim = oracle_with_marks(rate=0.05)
    for i in range(10):
        oracle.query(images(300, seed=100 + i), f"benign-{i}")
    oracle.query(images(600, seed=7), "thief")
    table = {
        r.canonical.reshape(-1).astype(np.int32).tobytes(): r.planted
        for r in defense.store
        if r.client == "thief"
    }
    result = dawn_evidence(Repeats(victim, table), list(defense.store), 5)
    assert result.p_value <= 1e-6
    assert result.detail["ranked_clients"][0][0] == "thief" and result.detail["clients"] == 11
    independent = dawn_evidence(victim, list(defense.store), 5)
    assert independent.p_value > 1e-3


@pytest.fixture(scope="module")
def owner_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("owner")
    assert (
        run(
            [
                "-q",
                "train",
                "--arch",
                "mlp",
                "--epochs",
                "30",
                "--out",
                str(folder / "plain.safetensors"),
            ]
        )
        == 0
    )
    assert (
        run(
            [
                "-q",
                "watermark",
                "embed",
                "--kind",
                "static",
                "--model",
                str(folder / "plain.safetensors"),
                "--out",
                str(folder / "marked.safetensors"),
                "--key-out",
                str(folder / "key.json"),
                "--epochs",
                "10",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    return folder


def verify_code(suspect, *options):
    """`vtrust -q ownership verify SUSPECT --data digits OPTIONS…`'s exit code."""
    return run(["-q", "ownership", "verify", str(suspect), "--data", "digits", *map(str, options)])


def test_ownership_verify_exits_like_a_gate(owner_files, capsys):
    f = owner_files
    key = ("--key", f / "key.json")
    assert verify_code(f / "marked.safetensors", *key) == 0
    assert "OWNED" in capsys.readouterr().out
    assert verify_code(f / "plain.safetensors", *key) == 1
    assert verify_code(f / "plain.safetensors", *key, "--evidence", "static,nonsense") == 2
    assert verify_code(f / "plain.safetensors") == 2  # no material
    (f / "bad.json").write_text("{not json")
    assert verify_code(f / "plain.safetensors", *key, "--calibration", f / "bad.json") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "not a calibration file" in err


def test_malformed_material_is_refused_in_one_line_and_nothing_is_written(owner_files, capsys):
    f = owner_files
    key = ("--key", f / "key.json")
    (f / "other.json").write_text(json.dumps({"format": "something-else"}))
    assert verify_code(f / "plain.safetensors", *key, "--calibration", f / "other.json") == 2
    (f / "marks.jsonl").write_text('{"format": "vtrust-answer-marks", "version": 1}\n{oops\n{}\n')
    assert verify_code(f / "plain.safetensors", "--marks", f / "marks.jsonl") == 2
    out = f / "never.json"
    code = run(["-q", "ownership", "calibrate", "--marks", str(f / "marks.jsonl"), "--data",
                "digits", "--null-models", "2", "--out", str(out)])  # fmt: skip
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("vtrust: error")]) == 3


def test_ownership_calibrate_then_verify_with_dataset_inference(owner_files, capsys):
    f = owner_files
    common = [
        "--key",
        str(f / "key.json"),
        "--owner-model",
        str(f / "marked.safetensors"),
        "--samples",
        "40",
    ]
    assert (
        run(
            [
                "-q",
                "ownership",
                "calibrate",
                *common,
                "--null-models",
                "4",
                "--cache",
                str(f / "null"),
                "--out",
                str(f / "cal.json"),
            ]
        )
        == 0
    )
    doc = json.loads((f / "cal.json").read_text())
    assert {k["kind"] for k in doc["kinds"]} == {"static", "dataset-inference"}
    capsys.readouterr()
    code = run(
        [
            "-q",
            "ownership",
            "verify",
            str(f / "marked.safetensors"),
            *common,
            "--calibration",
            str(f / "cal.json"),
            "--json",
        ]
    )
    verdict = json.loads(capsys.readouterr().out)
    assert code == 0 and verdict["owned"]
    assert all(row["calibrated"] and row["null_models"] == 4 for row in verdict["evidence"])
    # the calibration belongs to this material: other samples → refused
    assert (
        run(
            [
                "-q",
                "ownership",
                "verify",
                str(f / "marked.safetensors"),
                "--key",
                str(f / "key.json"),
                "--owner-model",
                str(f / "marked.safetensors"),
                "--samples",
                "41",
                "--calibration",
                str(f / "cal.json"),
            ]
        )
        == 2
    )


def test_the_gate_passes_an_extraction_when_the_answer_watermark_traces_the_thief(
    owner_files, tmp_path, capsys
):
    """The same thief removes the static mark (gate fails) but, behind an answer
    watermark, is traced to its client (gate passes)."""
    attack = tmp_path / "thief.toml"
    attack.write_text('kind = "knockoff"\n[params]\nstrategy = "random"\nsource = "attacker"\n'
                      "budget = 400\nlabels_only = false\n")  # fmt: skip
    f = owner_files
    gate = ["-q", "gate", "watermark", "--model", str(f / "marked.safetensors"),
            "--key", str(f / "key.json"), "--attack", str(attack)]  # fmt: skip
    assert run(gate) == 1
    capsys.readouterr()
    assert run([*gate, "--answer-watermark", "0.1", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["attacks"][0]["rows"][0]
    assert row["traced"] and row["traced_client"] == "thief" and row["answer_p_value"] <= 1e-6
    assert not row["owned"]  # the static mark itself did not survive


def test_trigger_evidence_comes_from_a_dynamic_key(digits, small_mlp):
    """A trigger-set key's evidence: the marked copy owned through it, the unmarked model not."""
    import copy

    from vtrust.models import TrainConfig
    from vtrust.watermark.dynamic import DynamicWatermark, new_dynamic_key

    key = new_dynamic_key(digits, triggers=40, seed=11)
    marked = DynamicWatermark(key, digits).embed(
        copy.deepcopy(small_mlp), digits.victim, TrainConfig(epochs=30, lr=3e-3, seed=0)
    )
    side = OwnerSide(digits, key=key)
    assert side.available() == ("trigger",)
    owned = combine(side.evidence(marked), 1e-6)
    plain = combine(side.evidence(small_mlp), 1e-6)
    assert owned.owned and owned.kinds[0]["kind"] == "trigger"
    assert not plain.owned and plain.kinds[0]["adjusted_p_value"] == 1.0


def test_ownership_verify_counts_only_the_mark_log_dated_before_the_suspect_was_seen(
    owner_files, tmp_path, capsys
):
    """The dishonest owner's forged log (every record fits the suspect) convicts an
    independent model when taken as it stands; with a trusted notary and the date the
    verifier first saw the suspect, only the prefix dated before then counts."""
    from datetime import datetime, timedelta, timezone

    from vtrust.attacks.forged_log import forge_mark_log
    from vtrust.keying import ProtectionKey
    from vtrust.ownership.mark_store import MarkStore
    from vtrust.targets.loading import load_target

    f = owner_files
    suspect = load_target(f / "plain.safetensors")
    probes = np.random.default_rng(4).random((4000, 1, 8, 8), dtype=np.float32)
    forged = forge_mark_log(suspect.predict(probes), probes, ProtectionKey.generate().secret,
                            rate=0.01, n_classes=10)  # fmt: skip
    marks = tmp_path / "marks.jsonl"
    MarkStore(marks).append(forged)
    assert verify_code(f / "plain.safetensors", "--marks", marks) == 0  # the forgery works
    assert run(["-q", "watermark", "notary", "--out", str(tmp_path / "notary.json")]) == 0
    assert run(["-q", "ownership", "date-log", "--marks", str(marks), "--notary",
                str(tmp_path / "notary.json")]) == 0  # fmt: skip
    assert (tmp_path / "marks.jsonl.dates.json").exists()
    capsys.readouterr()
    dated = ("--marks", marks, "--notary-pub", tmp_path / "notary.pub.json")
    before = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    assert verify_code(f / "plain.safetensors", *dated, "--suspect-seen", before) == 2
    err = capsys.readouterr().err
    assert f"0 of {len(forged)} records dated" in err and "Traceback" not in err
    after = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert verify_code(f / "plain.safetensors", *dated, "--suspect-seen", after) == 0
    # the key is not notarised: with dating it is left out, and the output says so
    capsys.readouterr()
    assert verify_code(f / "plain.safetensors", *dated, "--suspect-seen", after, "--key",
                       f / "key.json") == 0  # fmt: skip
    assert "dating: key left out" in capsys.readouterr().out
    assert verify_code(f / "plain.safetensors", "--marks", marks, "--mark-dates", marks) == 2
    (tmp_path / "bad.dates.json").write_text("{not json")  # a malformed dates file: one line
    capsys.readouterr()
    assert verify_code(f / "plain.safetensors", *dated, "--suspect-seen", after, "--mark-dates",
                       tmp_path / "bad.dates.json") == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "mark-log dates" in err and "Traceback" not in err
