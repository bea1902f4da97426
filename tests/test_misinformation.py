"""Adaptive Misinformation: in-distribution clients get the true top-1, out-of-
distribution queries the misinformation model's wrong labels, whatever their client id."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust.catalog import CatalogError, parse_entry
from vtrust.data.natural import natural_image_pool
from vtrust.defenses.deployment import Deployment
from vtrust.defenses.misinformation import affine_form, train_misinformation
from vtrust.models import build_model
from vtrust.models.training import predict_proba


@pytest.fixture(scope="module")
def am_oracle(mlp_victim, digits):
    return Deployment.of(["misinformation"]).oracle(mlp_victim, digits.victim, seed=0)


def test_in_distribution_answers_keep_the_true_top1(am_oracle, mlp_victim, digits):
    answers = am_oracle.query(digits.test.x, client_id="benign")
    clean = predict_proba(mlp_victim, digits.test.x)
    kept = (answers.argmax(1) == clean.argmax(1)).mean()
    assert kept >= 0.995  # at most the quantile's share of benign queries is misinformed


def test_out_of_distribution_answers_are_wrong_for_every_client_id(am_oracle, mlp_victim, digits):
    x = natural_image_pool(200, digits.input_shape, seed=3)
    clean = predict_proba(mlp_victim, x).argmax(1)
    for ids in (["one"], [f"sybil-{i}" for i in range(50)]):
        answers = np.concatenate([am_oracle.query(part, client_id=cid)
                                  for cid, part in zip(ids, np.array_split(x, len(ids)),
                                                       strict=True)])  # fmt: skip
        assert (answers.argmax(1) != clean).mean() > 0.9


def test_the_weight_grows_as_the_score_falls(am_oracle, digits):
    (am,) = am_oracle.defenses
    x = digits.test.x[:50]
    noisy = np.clip(x + np.random.default_rng(0).normal(0, 0.5, x.shape), 0, 1).astype(np.float32)
    probs = np.full((50, 10), 0.1)
    assert am.weights(noisy, probs).mean() > am.weights(x, probs).mean() + 0.5
    assert (np.diff(am.weights(x, probs)[np.argsort(-am.scores(x, probs))]) >= -1e-12).all()


def test_misinformation_model_puts_its_mass_off_the_true_class(digits):
    model = build_model("mlp", digits.input_shape, 10, seed=0)
    train_misinformation(model, digits.victim.x, digits.victim.y, epochs=5, lr=2e-3, seed=0)
    p = predict_proba(model, digits.test.x)
    assert p[np.arange(len(p)), digits.test.y].mean() < 0.02


def test_the_affine_shortcut_answers_as_the_torch_model_does(am_oracle, digits):
    (am,) = am_oracle.defenses
    assert am.affine is not None  # the default misinformation model is one linear layer
    x = natural_image_pool(64, digits.input_shape, seed=5)
    np.testing.assert_allclose(am.wrong_answers(x), predict_proba(am.misinformation, x),
                               atol=1e-5)  # fmt: skip
    assert affine_form(build_model("mlp", digits.input_shape, 10, seed=0)) is None


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_answers_are_probability_rows(am_oracle, digits, seed):
    """Law: a blend of two distributions is a distribution, for any queries."""
    x = np.random.default_rng(seed).random((8, *digits.input_shape), dtype=np.float32)
    out = am_oracle.query(x, client_id="law")
    assert (out >= 0).all() and np.allclose(out.sum(1), 1.0)


@pytest.mark.parametrize(("params", "message"), [
    ("quantile = 0.7", "quantile"), ("steepness = 0.0", "steepness"),
    ('misinformation = "resnet"', "misinformation"),
])  # fmt: skip
def test_bad_settings_are_catalog_errors(params, message):
    with pytest.raises(CatalogError, match=message):
        parse_entry("defenses", f'kind = "adaptive-misinformation"\n[params]\n{params}',
                    name="bad", source="bad.toml")  # fmt: skip


def test_a_client_refused_at_its_first_query_gets_a_refusal_not_a_crash(mlp_victim, digits):
    """The default preset's refusing member stops a chunk before its first row; the
    transforming members behind it must then see no rows rather than fail on them."""
    from vtrust.oracle import QueryRefused

    oracle = Deployment.of(["default"]).oracle(mlp_victim, digits.victim, seed=0)
    x = natural_image_pool(64, digits.input_shape, seed=1)
    with pytest.raises(QueryRefused) as refusal:
        for row in x:  # one query per call: the refusal falls on a chunk's first row
            oracle.query(row[None], client_id="thief")
    assert refusal.value.defense == "default" and refusal.value.queries <= 8
    with pytest.raises(QueryRefused):  # later calls are refused before any transform
        oracle.query(x[:4], client_id="thief")


def test_the_fused_and_general_paths_give_the_same_answers(am_oracle, digits):
    """The affine misinformation model inside the density product answers as the general
    path (density score, then the model on the active rows) does."""
    (am,) = am_oracle.defenses
    x = np.concatenate([digits.test.x[:32], natural_image_pool(32, digits.input_shape, seed=6)])
    probs = np.full((64, 10), 0.1)
    fused = am.transform("c", x, probs)
    saved, am.fused = am.fused, None
    try:
        general = am.transform("c", x, probs)
    finally:
        am.fused = saved
    np.testing.assert_allclose(fused, general, atol=1e-4)
    assert (fused[:32] == probs[:32]).all()  # benign rows untouched (α below the floor)


@settings(max_examples=20, deadline=None)
@given(st.floats(min_value=1.0, max_value=38.0), st.integers(min_value=0, max_value=2**31 - 1))
def test_enormous_inputs_get_probability_rows_or_a_clear_error(am_oracle, digits, exponent, seed):
    """Law: however large a finite query (the float32 fused product may overflow where
    the float64 path does not), the answer is a probability row — or, when the model
    itself overflows, an InputError; never NaN."""
    from vtrust.errors import InputError

    rng = np.random.default_rng(seed)
    x = (rng.choice([-1.0, 1.0], (4, *digits.input_shape)) * 10.0**exponent).astype(np.float32)
    try:
        out = am_oracle.query(x, client_id="huge")
    except InputError as error:
        assert "not finite" in str(error)
        return
    assert np.isfinite(out).all() and np.allclose(out.sum(axis=1), 1.0)


def test_an_unseeded_deployment_trains_an_unpredictable_misinformation_model(mlp_victim, digits):
    """Without a run seed the misinformation model comes from the CSPRNG: two deployments
    differ (and neither is marked insecure); a seeded one is reproducible and says so."""
    x = natural_image_pool(32, digits.input_shape, seed=7)

    def wrong(seed):
        oracle = Deployment.of(["misinformation"]).oracle(mlp_victim, digits.victim, seed=seed)
        (am,) = oracle.defenses
        return am.wrong_answers(x), am.insecure

    (a, insecure_a), (b, _) = wrong(None), wrong(None)
    assert not insecure_a and not np.allclose(a, b)
    (c, insecure_c), (d, _) = wrong(3), wrong(3)
    assert insecure_c and np.array_equal(c, d)
