import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from vtrust.catalog import load_entry
from vtrust.errors import InputError
from vtrust.evaluation.watermark import assert_watermark_survives
from vtrust.models import TrainConfig, accuracy, build_model
from vtrust.models.recipes import default_config, train_model
from vtrust.watermark.calibration import calibrate
from vtrust.watermark.dynamic import DynamicWatermark, new_dynamic_key, trigger_set
from vtrust.watermark.keys import KeyFileError, WatermarkKey, load_key, save_key
from vtrust.watermark.ownership import verify
from vtrust.watermark.registry import FingerprintRegistry, RegistryError, fingerprint_copies
from vtrust.watermark.static import StaticWatermark, new_static_key
from vtrust.watermark.stats import binomial_tail, poisson_binomial_tail


@given(n=st.integers(1, 60), k=st.integers(0, 60), p=st.floats(0.01, 0.99))
def test_binomial_tail_matches_its_definition(n, k, p):
    k = min(k, n)
    exact = sum(sps.binom.pmf(i, n, p) for i in range(k, n + 1))
    assert binomial_tail(k, n, p) == pytest.approx(exact, rel=1e-9, abs=1e-300)
    assert poisson_binomial_tail(k, np.full(n, p)) == pytest.approx(exact, rel=1e-6, abs=1e-12)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32), bits=st.integers(1, 128))
def test_extract_after_embed_is_identity(small_mlp, digits, seed, bits):
    model = build_model("mlp", digits.input_shape, 10, seed=0)
    model.load_state_dict(small_mlp.state_dict())
    key = new_static_key(model, bits=bits, seed=seed)
    wm = StaticWatermark(key)
    wm.embed(model, digits.victim, TrainConfig(epochs=10, lr=5e-4, cosine=False))
    assert np.array_equal(wm.extract(model), key.message())


@pytest.fixture(scope="module")
def static_cnn(digits):
    base = train_model(digits, "cnn", seed=0)
    model = build_model("cnn", digits.input_shape, 10, seed=0)
    key = new_static_key(model, bits=256, seed=11)
    StaticWatermark(key).embed(model, digits.victim, default_config("cnn", seed=0))
    return base, model, key


def test_static_256_bits_in_the_cnn(static_cnn, digits):
    base, model, key = static_cnn
    assert accuracy(model, digits.test) >= base.test_accuracy - 0.005
    result = verify(model, key, digits, fpr=1e-6)
    assert result.owned and result.p_value <= 1e-6 and result.score == 1.0
    for attack, strength in (("prune-layer", 0.6), ("prune-global", 0.6), ("ftal", 5)):
        attacked = load_entry("attacks", attack).build().apply(model, digits.attacker, strength)
        after = StaticWatermark(key).verify(attacked)
        assert after.score == 1.0, (attack, after.score)  # BER = 0


def test_wrong_key_and_wrong_layer_are_not_owned(static_cnn, digits):
    _, model, key = static_cnn
    other = new_static_key(model, bits=256, layer=key.static.layer, seed=12)
    assert not StaticWatermark(other).verify(model).owned
    elsewhere = dataclasses.replace(key, static=dataclasses.replace(key.static, layer="nope"))
    result = StaticWatermark(elsewhere).verify(model)
    assert not result.owned and "no layer" in result.reason
    mlp = build_model("mlp", digits.input_shape, 10)
    assert not StaticWatermark(key).verify(mlp).owned


def test_capacity_is_checked(digits):
    model = build_model("softmax", digits.input_shape, 10)
    with pytest.raises(ValueError, match="at most 640 bits"):
        new_static_key(model, bits=641)


def test_calibration_scores_independent_models_near_chance(small_mlp, digits):
    """`calibrate` trains the null models and keeps their scores (that 20 of them give no
    false positive is test_adversary_watermark's null-calibration test)."""
    key = new_static_key(small_mlp, bits=256, seed=5)
    calibration = calibrate(key, digits, "mlp", models=4)
    assert len(calibration.scores) == 4
    assert all(binomial_tail(round(s * 256), 256) > 1e-6 for s in calibration.scores)
    assert calibration.threshold(1e-6) < 1.0 and 0.4 < calibration.mean < 0.6


def test_dynamic_trigger_set_survives_fine_tuning(digits):
    base = train_model(digits, "mlp", seed=0)
    key = new_dynamic_key(digits, style="noise", triggers=100, seed=2)
    wm = DynamicWatermark(key)
    model = build_model("mlp", digits.input_shape, 10, seed=0)
    wm.embed(model, digits.victim, default_config("mlp", seed=0, epochs=90))  # EPOCH_FACTOR
    # over key seeds 2–6 the 100 noise triggers cost 0–1.3 points of accuracy
    assert accuracy(model, digits.test) >= base.test_accuracy - 0.02
    tuned = load_entry("attacks", "ftal").build().apply(model, digits.attacker, 5)
    result = wm.verify(tuned, digits.test.x)
    assert result.owned and result.p_value <= 1e-6
    assert not wm.verify(base.model, digits.test.x).owned


@pytest.mark.parametrize("style", ["noise", "content", "unrelated", "entangled"])
def test_trigger_styles(digits, style, tmp_path):
    key = new_dynamic_key(digits, style=style, triggers=60, seed=4)
    inputs, labels = trigger_set(key, digits)
    again = trigger_set(load_key(save_key(tmp_path / "k.json", key)))  # re-derived from the secret
    assert np.array_equal(again[0], inputs) and np.array_equal(again[1], labels)
    assert inputs.shape == (60, 1, 8, 8) and inputs.min() >= 0 and inputs.max() <= 1
    if style in ("content", "entangled"):
        assert len(set(labels.tolist())) == 1


def test_key_files_round_trip_and_reject_tampering(tmp_path, digits, small_mlp):
    static = new_static_key(small_mlp, bits=64, seed=1)
    dynamic = new_dynamic_key(digits, triggers=50, seed=1)
    for name, key in (("s.json", static), ("d.json", dynamic)):
        save_key(tmp_path / name, key)
        loaded = load_key(tmp_path / name)
        assert loaded.commitment == key.commitment
        assert key.secret.hex() not in repr(loaded)
    doc = json.loads((tmp_path / "s.json").read_text())
    doc["static"]["bits"] += 1
    (tmp_path / "t.json").write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="commitment mismatch"):
        load_key(tmp_path / "t.json")
    cases = {
        "v.json": json.dumps({**json.loads((tmp_path / "s.json").read_text()), "version": 9}),
        "n.json": "not json",
        "x.json": json.dumps({"format": "other"}),
        "h.json": json.dumps({**json.loads((tmp_path / "s.json").read_text()), "secret": "zz"}),
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(KeyFileError):
            load_key(tmp_path / name)
    assert (tmp_path / "s.json").stat().st_mode & 0o077 == 0  # the secret is private
    with pytest.raises(KeyFileError):
        load_key(tmp_path / "missing.json")
    with pytest.raises(KeyFileError, match="128 bits"):
        WatermarkKey(secret=b"short", static=static.static)


def test_trace_finds_the_leaking_user_among_ten(tmp_path, mlp_victim, digits):
    users = [f"user{i}" for i in range(10)]
    copies = fingerprint_copies(mlp_victim, digits.victim, users, seed=7)
    registry = FingerprintRegistry(tmp_path / "reg.db")
    for user, (_, key) in copies.items():
        registry.register(user, "1", key)
    ranking = registry.trace(copies["user6"][0])
    assert ranking[0].user == "user6" and ranking[0].p_value <= 1e-6
    assert all(not row.owned for row in ranking[1:])
    assert all(accuracy(m, digits.test) > 0.95 for m, _ in copies.values())
    (tmp_path / "bad.db").write_bytes(b"not a database" * 100)
    with pytest.raises(RegistryError):
        FingerprintRegistry(tmp_path / "bad.db")


def test_pytest_helper(static_cnn, digits):
    _, model, key = static_cnn
    assert_watermark_survives(model, key, digits, [load_entry("attacks", "quantize")])
    with pytest.raises(AssertionError, match="removed by: distill-soft"):
        assert_watermark_survives(model, key, digits, [load_entry("attacks", "distill-soft")])
    with pytest.raises(AssertionError, match="does not verify"):
        assert_watermark_survives(build_model("cnn", (1, 8, 8), 10), key, digits)


def test_overwrite_attack_changes_weights_but_keeps_accuracy(static_cnn, digits):
    _, model, key = static_cnn
    attacked = load_entry("attacks", "overwrite").build().apply(model, digits.attacker, 0.2)
    assert not torch.equal(attacked.layers.fc1.weight, model.layers.fc1.weight)
    assert accuracy(attacked, digits.test) > 0.9


def test_embed_refuses_bits_that_do_not_settle(small_mlp, digits, monkeypatch):
    import vtrust.watermark.static as static

    monkeypatch.setattr(static, "SETTLE_STEPS", 0)
    model = build_model("mlp", digits.input_shape, 10, seed=0)
    model.load_state_dict(small_mlp.state_dict())
    wm = StaticWatermark(new_static_key(model, bits=128, seed=5))
    with pytest.raises(InputError, match="did not settle"):
        wm.embed(model, digits.victim, TrainConfig(epochs=1, lr=1e-9, cosine=False))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3000),
    bits=st.integers(1, 40),
    support=st.integers(1, 700),
    secret=st.binary(min_size=16, max_size=16),
)
def test_a_sparse_projection_is_the_matrix_it_stands_for(n, bits, support, secret):
    """Law: the sparse projection maps w to X·w for the dense X holding each bit's
    ``support`` coefficients at its columns (repeats added), scaled to a dense row's norm."""
    from vtrust.watermark.keys import StaticPart
    from vtrust.watermark.static import Projection

    key = WatermarkKey(secret=secret, static=StaticPart("layer", bits, support=support))
    projection = Projection.derive(key, n)
    assert projection.values.shape == (bits, support) and projection.columns.max() < n
    dense = torch.zeros(bits, n, dtype=torch.float64)
    rows = torch.arange(bits)[:, None].expand(bits, support)
    dense.index_put_((rows.flatten(), projection.columns.flatten()),
                     projection.values.double().flatten(), accumulate=True)  # fmt: skip
    w = torch.from_numpy(np.random.default_rng(0).standard_normal(n))
    assert torch.allclose(projection.to(torch.float64)(w), dense @ w, rtol=1e-9, atol=1e-9)
    if bits * support >= 200:  # N(0, n / support) coefficients: a dense row's expected norm
        rms = float(projection.values.double().pow(2).mean().sqrt())
        assert rms == pytest.approx(np.sqrt(n / support), rel=0.25)
    assert Projection.derive(key, n).values.equal(projection.values)  # re-derived, not stored


def test_sparse_keys_for_large_layers_dense_ones_kept_and_huge_ones_refused(tmp_path, small_mlp):
    from vtrust.watermark.static import DEFAULT_SUPPORT, layer_weight

    big = torch.nn.Sequential(torch.nn.Linear(2048, 2048))  # 4.2M weights
    key = new_static_key(big, bits=256, seed=3)
    assert key.static.support == DEFAULT_SUPPORT
    wm = StaticWatermark(key)
    assert wm.projection(layer_weight(big, "0").numel()).values.numel() == 256 * DEFAULT_SUPPORT
    assert 0.3 < wm.extract(big).mean() < 0.7  # an unmarked layer: about fair coins
    assert not wm.verify(big).owned
    # a key file without the field (written before it existed) is dense, as it was
    dense_key = dataclasses.replace(key, static=dataclasses.replace(key.static, support=0))
    save_key(tmp_path / "dense.json", dense_key)
    assert "support" not in json.loads((tmp_path / "dense.json").read_text())["static"]
    assert load_key(tmp_path / "dense.json").static.support == 0
    with pytest.raises(InputError, match="coefficients"):  # 256 × 4.2M floats: refused
        StaticWatermark(dense_key).extract(big)
    small = new_static_key(torch.nn.Sequential(torch.nn.Linear(20, 20)), bits=16, seed=3)
    assert small.static.support == 0  # ≤ 512 weights: dense
    doc = json.loads((tmp_path / "dense.json").read_text())
    doc["static"]["support"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="support"):
        load_key(tmp_path / "bad.json")
