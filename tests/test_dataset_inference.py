"""Dataset inference: the blind walk, the owner's fitted score and the suspect's test."""

import numpy as np
import pytest

from vtrust.data import Dataset
from vtrust.errors import InputError
from vtrust.models import TrainConfig, build_model, fit
from vtrust.ownership.dataset_inference import DatasetInference, WalkParams, blind_walk

WALK = WalkParams(step=0.05, max_steps=60)


@pytest.fixture(scope="module")
def overfit(digits):
    """An MLP that memorised 150 training points (train 1.0, test ≈ 0.86)."""
    model = build_model("mlp", digits.input_shape, 10, seed=0)
    train = Dataset(digits.victim.x[:150], digits.victim.y[:150], 10, "private")
    fit(model, train, TrainConfig(epochs=200, lr=3e-3, weight_decay=0.0, seed=0))
    return model


def test_blind_walk_counts_the_steps_to_the_first_other_label(overfit, digits):
    x, y = digits.test.x[:20], digits.test.y[:20]
    features = blind_walk(overfit, x, y, WALK, seed=0)
    assert features.shape == (20, 3 * WALK.directions)
    wrong = overfit(__import__("torch").from_numpy(x)).argmax(1).numpy() != y
    assert (features[wrong] == 0).all()  # misclassified: distance 0
    steps = features / WALK.step
    assert np.allclose(steps, np.rint(steps)) and steps.max() <= WALK.max_steps + 1
    for i in range(3):  # sorted within each noise type
        block = features[:, i * WALK.directions : (i + 1) * WALK.directions]
        assert (np.diff(block, axis=1) >= 0).all()
    np.testing.assert_array_equal(features, blind_walk(overfit, x, y, WALK, seed=0))


def test_the_model_that_memorised_the_private_points_is_found(overfit, digits):
    di = DatasetInference(overfit, (digits.victim.x[:100], digits.victim.y[:100]),
                          (digits.test.x[:100], digits.test.y[:100]), WALK)  # fmt: skip
    result = di.test(overfit, (digits.victim.x[100:150], digits.victim.y[100:150]),
                     (digits.test.x[200:250], digits.test.y[200:250]))  # fmt: skip
    assert result.p_value < 1e-4 and result.private_mean > result.public_mean


def test_a_model_that_saw_neither_side_gives_calibrated_p_values(overfit, digits):
    """Null: for a model trained on other data, 'private' and 'public' points are
    exchangeable, so the p-value is (about) uniform: few of 16 random splits reject."""
    di = DatasetInference(overfit, (digits.victim.x[:100], digits.victim.y[:100]),
                          (digits.test.x[:100], digits.test.y[:100]), WALK)  # fmt: skip
    other = build_model("mlp", digits.input_shape, 10, seed=3)
    fit(other, digits.attacker, TrainConfig(epochs=30, lr=3e-3, seed=3))
    pool_x, pool_y = digits.test.x[100:], digits.test.y[100:]
    rng = np.random.default_rng(0)
    p_values = []
    for _ in range(16):
        order = rng.permutation(len(pool_x))[:80]
        a, b = order[:40], order[40:]
        p_values.append(di.test(other, (pool_x[a], pool_y[a]), (pool_x[b], pool_y[b])).p_value)
    assert np.mean(np.asarray(p_values) <= 0.05) <= 0.25
    assert 0.2 < np.median(p_values) < 0.8


def test_bad_samples_are_refused(overfit, digits):
    with pytest.raises(InputError):
        blind_walk(overfit, digits.test.x[:3], digits.test.y[:2], WALK, seed=0)
    with pytest.raises(InputError):
        WalkParams(directions=0)
    di = DatasetInference(overfit, (digits.victim.x[:20], digits.victim.y[:20]),
                          (digits.test.x[:20], digits.test.y[:20]), WALK)  # fmt: skip
    with pytest.raises(InputError):
        di.test(
            overfit,
            (digits.victim.x[:5], digits.victim.y[:5]),
            (digits.test.x[:4], digits.test.y[:4]),
        )
