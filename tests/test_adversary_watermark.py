"""Watermarks and fingerprints against an adversary who has read the code and the key
format: ambiguity (forged ownership), grinding, undated keys, secrets left readable."""

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from vtrust.attacks.ambiguity import Ambiguity, AmbiguityParams, stated_bits_key
from vtrust.catalog import load_entry, parse_entry
from vtrust.errors import KeyFileError
from vtrust.evaluation.watermark import evaluate_robustness
from vtrust.models import build_model
from vtrust.models.recipes import default_config
from vtrust.oracle import Oracle, OutputMode
from vtrust.watermark.dynamic import DynamicWatermark, new_dynamic_key, trigger_set
from vtrust.watermark.keys import key_from_json, key_to_json, load_key, save_key
from vtrust.watermark.notary import Notary
from vtrust.watermark.ownership import Dating, verify
from vtrust.watermark.registry import FingerprintRegistry
from vtrust.watermark.static import StaticWatermark, new_static_key
from vtrust.watermark.stats import binomial_tail
from vtrust.watermark.verification import Verification


def test_finding1_stated_bits_forgery_is_refused(mlp_victim, digits):
    """The pre-fix ambiguity attack: read the bits the forger's projection gives on an
    unmarked model and state them in a key. Version 2 keys have no bits to state."""
    forged = stated_bits_key(mlp_victim, "layers.fc1", 256, seed=99)
    with pytest.raises(KeyFileError, match="'bits' must be int"):
        key_from_json(forged, source="forged")
    # a version-1 key (which stored its bits) is refused outright
    doc = json.loads(forged)
    doc["version"] = 1
    with pytest.raises(KeyFileError, match="version 1"):
        key_from_json(json.dumps(doc), source="old")


def test_finding1_stated_labels_are_ignored(mlp_victim, digits):
    """The dynamic forgery: query the model on the forger's triggers and write its answers
    as labels. Labels are re-derived from the secret; stated ones are never read."""
    key = new_dynamic_key(digits, style="noise", triggers=100, seed=123)
    inputs, _ = trigger_set(key)
    answers = Oracle(mlp_victim, digits.input_shape, output=OutputMode.LABELS).query(inputs)
    doc = json.loads(key_to_json(key))
    doc["dynamic"]["labels"] = answers.tolist()
    forged = key_from_json(json.dumps(doc), source="forged")
    assert not verify(mlp_victim, forged, digits, fpr=1e-6).owned


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_grinding_secrets_never_gives_ownership(mlp_victim, digits, kind):
    """The adaptive ambiguity attack (catalog entry `ambiguity`): 60 fresh secrets per
    kind against an unmarked model; none is owned, and the best is nowhere near."""
    victim_key = (
        new_static_key(mlp_victim, bits=256, seed=1)
        if kind == "static"
        else new_dynamic_key(digits, triggers=100, seed=1)
    )
    forgery = Ambiguity(AmbiguityParams(tries=60)).forge(mlp_victim, digits, victim_key, seed=3)
    assert not forgery.succeeded
    assert forgery.best.adjusted_p_value == 1.0
    assert forgery.best.p_value > 1e-9  # the best of 60 tries is an ordinary null value


def test_the_threshold_holds_against_2_to_the_40_tries():
    """With 2^40 secrets some matches ≈ 70 % of 256 bits by chance: that must not be owned,
    though a single-key test at fpr 1e-6 would say so."""
    matches = 180  # 70.3 %
    p = binomial_tail(matches, 256)
    assert p * 2.0**40 > 1e-3  # a 2^40-try grinder reaches this
    single = Verification.decide(
        "static", matches=matches, total=256, p_value=p, fpr=1e-6, calibration=None,
        grinding_bits=0,
    )  # fmt: skip
    assert single.owned
    guarded = Verification.decide(
        "static", matches=matches, total=256, p_value=p, fpr=1e-6, calibration=None
    )
    assert not guarded.owned and guarded.grinding_bits == 64
    # a marked model (BER 0) is far below the adjusted threshold
    full = Verification.decide(
        "static", matches=256, total=256, p_value=binomial_tail(256, 256), fpr=1e-6,
        calibration=None,
    )  # fmt: skip
    assert full.owned and full.adjusted_p_value < 1e-50


@pytest.fixture(scope="module")
def marked(mlp_victim, digits):
    import copy

    model = copy.deepcopy(mlp_victim)
    key = new_static_key(model, bits=256, seed=21, owner="alice")
    config = default_config("mlp", seed=0)
    StaticWatermark(key).embed(model, digits.victim, config.__class__(**{
        **config.__dict__, "epochs": 10, "cosine": False, "lr": config.lr / 2}))  # fmt: skip
    return model, key


def test_null_calibration_keeps_zero_false_positives_on_20_models(marked, digits):
    """The calibration (what `calibrate` computes: the scores of 20 independently trained
    models) keeps the marked model owned, and none of the 20 is."""
    from vtrust.models.recipes import train_model
    from vtrust.watermark.stats import NullCalibration

    model, key = marked
    nulls = [train_model(digits, "mlp", seed=seed).model for seed in range(5000, 5020)]
    scores = tuple(verify(null, key, digits, fpr=1.0).score for null in nulls)
    calibrated = key.with_calibration(NullCalibration(scores))
    assert verify(model, calibrated, digits, fpr=1e-6).owned
    for null in nulls:  # the same 20 independent models, now as suspects
        assert not verify(null, calibrated, digits, fpr=1e-6).owned


def test_dated_commitments(marked, digits, tmp_path):
    model, key = marked
    notary, other = Notary.generate(), Notary.generate()
    seen = datetime.now(timezone.utc) + timedelta(days=1)
    dated = key.with_receipt(notary.notarize(key.commitment, key.owner))
    policy = Dating(notary.public, seen)
    result = verify(model, dated, digits, fpr=1e-6, dating=policy)
    assert result.owned and result.dated
    # the receipt survives a save and load (it is not part of the commitment)
    assert verify(model, load_key(save_key(tmp_path / "k.json", dated)), digits, fpr=1e-6,
                  dating=policy).owned  # fmt: skip
    late = key.with_receipt(notary.notarize(key.commitment, "", when=seen + timedelta(hours=1)))
    foreign = key.with_receipt(other.notarize(key.commitment, key.owner))
    receipt = dict(dated.receipt)
    receipt["time"] = "2000-01-01T00:00:00+00:00"  # backdated by hand: the signature breaks
    backdated = key.with_receipt(receipt)
    stolen = new_static_key(model, bits=256, seed=22).with_receipt(dated.receipt)
    for bad, why in (
        (key, "no notary receipt"),
        (late, "not before the suspect"),
        (foreign, "not from this notary"),
        (backdated, "bad notary signature"),
        (stolen, "another commitment"),
    ):
        out = verify(model, bad, digits, fpr=1e-6, dating=policy)
        assert not out.owned and out.dated is False and why in out.reason, why


def test_gate_runs_the_ambiguity_attack(marked, digits):
    model, key = marked
    entry = parse_entry(
        "attacks", 'kind = "ambiguity"\n[params]\ntries = 12\n', name="amb", source="amb"
    )
    report = evaluate_robustness(model, key, digits, [entry])
    assert load_entry("attacks", "ambiguity").params.tries == 200  # the catalog entry
    outcome = report["attacks"][0]
    assert outcome["category"] == "ambiguity" and outcome["watermark_survives"]
    assert report["survives_all"]


def test_fingerprint_registry_is_private(tmp_path, mlp_victim):
    registry = FingerprintRegistry(tmp_path / "reg.db")
    registry.register("u", "1", new_static_key(mlp_victim, bits=32, seed=1))
    assert (tmp_path / "reg.db").stat().st_mode & 0o077 == 0
    (tmp_path / "open.db").touch(mode=0o644)
    FingerprintRegistry(tmp_path / "open.db")
    assert (tmp_path / "open.db").stat().st_mode & 0o077 == 0


def test_non_ascii_digests_are_malformed_not_crashes(tmp_path, mlp_victim):
    key = new_static_key(mlp_victim, bits=16, seed=2)
    doc = json.loads(key_to_json(key))
    doc["commitment"] = "é" * 64
    with pytest.raises(KeyFileError, match="commitment mismatch"):
        key_from_json(json.dumps(doc), source="k")


def test_insecure_seed_is_reported(mlp_victim, digits):
    seeded = new_static_key(mlp_victim, bits=16, seed=2)
    fresh = new_static_key(mlp_victim, bits=16)
    assert verify(mlp_victim, seeded, digits, fpr=1e-6).insecure_key
    assert not verify(mlp_victim, fresh, digits, fpr=1e-6).insecure_key
    assert json.loads(key_to_json(fresh))["insecure_seed"] is None


def test_content_triggers_come_from_the_verifiers_data(digits):
    key = new_dynamic_key(digits, style="content", triggers=20, seed=5)
    a, labels = trigger_set(key)  # loads the key's dataset itself
    b, _ = trigger_set(key, digits)
    assert np.array_equal(a, b) and len(set(labels.tolist())) == 1
    wm = DynamicWatermark(key, digits)
    assert not verify(build_model("mlp", digits.input_shape, 10), key, digits, fpr=1e-6).owned
    assert wm.inputs.shape == (20, 1, 8, 8)


def test_malformed_notary_files_are_one_line_errors(tmp_path, capsys):
    from vtrust.cli import run

    (tmp_path / "bad.pub.json").write_text('{"format": "vtrust-notary-public", "ed25519": "zz"}')
    (tmp_path / "junk.json").write_text("[" * 50_000)
    (tmp_path / "key.json").write_text("{}")
    for args in (
        ["watermark", "verify", "--model", "m.st", "--key", str(tmp_path / "key.json"),
         "--notary-pub", str(tmp_path / "bad.pub.json"), "--suspect-seen", "2030-01-01"],
        ["watermark", "verify", "--model", "m.st", "--key", str(tmp_path / "key.json"),
         "--notary-pub", str(tmp_path / "junk.json"), "--suspect-seen", "2030-01-01"],
        ["watermark", "verify", "--model", "m.st", "--key", str(tmp_path / "key.json"),
         "--notary-pub", str(tmp_path / "bad.pub.json"), "--suspect-seen", "yesterday"],
        ["watermark", "notarize", "--key", str(tmp_path / "key.json"),
         "--notary", str(tmp_path / "junk.json")],
    ):  # fmt: skip
        before = (tmp_path / "key.json").read_text()
        assert run(args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "internal" not in err, err
        assert (tmp_path / "key.json").read_text() == before


def test_the_ambiguity_attack_runs_on_a_target_whose_first_layer_is_small(small_cnn, digits):
    """As the CLI calls it: on a target (not a bare module), against a 256-bit mark on a
    CNN whose first convolution holds only 144 weights — the stated-bits forgery reads
    the victim's own layer."""
    from vtrust.targets import as_target

    key = new_static_key(small_cnn, bits=256, seed=1)
    assert key.static.layer != "layers.conv1"
    forgery = Ambiguity(AmbiguityParams(tries=3)).forge(as_target(small_cnn), digits, key)
    assert forgery.tries == 3 and not forgery.succeeded and not forgery.stated_bits_accepted
