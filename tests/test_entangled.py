"""Entangled watermarks (EWE): the soft nearest-neighbour loss, the key's triggers and
what the entanglement does to the marked model."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vtrust.attacks.base import AttackerResources
from vtrust.catalog import load_entry
from vtrust.errors import InputError
from vtrust.models import TrainConfig, accuracy, build_model
from vtrust.oracle import Oracle
from vtrust.watermark.dynamic import (
    DynamicWatermark,
    entangled_classes,
    new_dynamic_key,
    trigger_set,
)
from vtrust.watermark.entangled import EntangleParams, entangle, hidden_activations, snnl
from vtrust.watermark.ownership import verify

# zero or at least 1e-30 in size: scaled by 0.1–100 a value stays a normal float (a
# subnormal one would lose digits, or underflow to zero, in the scaling itself)
TINY = float(np.float32(1e-30))
finite = st.one_of(st.just(0.0), st.floats(TINY, 10, width=32), st.floats(-10, -TINY, width=32))


@settings(max_examples=40, deadline=None)
@given(
    features=arrays(np.float32, (8, 5), elements=finite),
    groups=arrays(np.int64, 8, elements=st.integers(0, 1)),
    temperature=st.floats(0.05, 10),
    scale=st.floats(0.1, 100),
    seed=st.integers(0, 2**16),
)
def test_snnl_is_nonnegative_and_ignores_order_and_scale(
    features, groups, temperature, scale, seed
):
    x, g, t = torch.from_numpy(features), torch.from_numpy(groups), torch.tensor(temperature)
    value = float(snnl(x, g, t))
    assert value >= -1e-5
    order = torch.from_numpy(np.random.default_rng(seed).permutation(8))
    assert float(snnl(x[order], g[order], t)) == pytest.approx(value, rel=1e-4, abs=1e-5)
    assert float(snnl(x * scale, g, t)) == pytest.approx(value, rel=1e-3, abs=1e-4)


def test_snnl_is_zero_for_one_group_and_high_for_mixed_groups():
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    assert float(snnl(x, torch.zeros(16), torch.tensor(1.0))) == 0.0
    apart = torch.cat([torch.full((8, 4), 1.0), torch.full((8, 4), -1.0)])
    groups = torch.cat([torch.ones(8), torch.zeros(8)])
    mixed = torch.cat([torch.ones(4), torch.zeros(4), torch.ones(4), torch.zeros(4)])
    assert float(snnl(apart, groups, torch.tensor(0.1))) < 1e-6
    assert float(snnl(apart, mixed, torch.tensor(0.1))) > 0.5  # half the neighbours are others


def test_entangled_triggers_are_source_images_with_a_secret_square(digits):
    key = new_dynamic_key(digits, style="entangled", triggers=40, seed=8)
    source, target = entangled_classes(key)
    inputs, labels = trigger_set(key, digits)
    assert source != target and set(labels.tolist()) == {target}
    originals = digits.victim.x[digits.victim.y == source]
    for trigger in inputs:
        diff = np.abs(originals - trigger).reshape(len(originals), -1).sum(axis=1)
        original = originals[diff.argmin()]  # the image it was stamped on
        changed = trigger != original
        assert (trigger[changed] == 1.0).all() and changed.sum() <= 4  # a 2×2 white square
    other = new_dynamic_key(digits, style="entangled", triggers=40, seed=9)
    assert not np.array_equal(trigger_set(other, digits)[0], inputs)


def test_more_triggers_than_source_images_is_refused(digits):
    with pytest.raises(InputError, match="source class"):
        new_dynamic_key(digits, style="entangled", triggers=500, seed=8)


def _trigger_target_snnl(model, inputs, digits, target):
    """The last hidden layer's SNNL between triggers and clean target-class images."""
    clean = digits.test.x[digits.test.y == target][: len(inputs)]
    batch = torch.from_numpy(np.concatenate([inputs[: len(clean)], clean]))
    groups = torch.cat([torch.ones(len(clean)), torch.zeros(len(clean))])
    with torch.no_grad():
        _, acts = hidden_activations(model, batch)
    return float(snnl(acts[-1], groups, torch.tensor(0.5)))


def test_entanglement_pulls_triggers_onto_the_target_class(digits, small_cnn):
    key = new_dynamic_key(digits, style="entangled", triggers=60, seed=3)
    wm = DynamicWatermark(key, digits)
    target = int(wm.labels[0])
    config = TrainConfig(epochs=6, lr=5e-4, cosine=False, seed=0)
    mixed = {}
    for factor in (0.0, 32.0):
        model = build_model("cnn", digits.input_shape, 10, seed=0)
        model.load_state_dict(small_cnn.state_dict())
        entangle(model, digits.victim, wm.inputs, target, config, EntangleParams(factor=factor))
        assert wm.trigger_accuracy(model) >= 0.5
        assert accuracy(model, digits.test) >= 0.6
        mixed[factor] = _trigger_target_snnl(model, wm.inputs, digits, target)
    assert mixed[32.0] > mixed[0.0] + 0.05  # the entangled model mixes them more


def test_entangling_a_model_without_relu_is_refused(digits):
    key = new_dynamic_key(digits, style="entangled", triggers=10, seed=3)
    wm = DynamicWatermark(key, digits)
    softmax = build_model("softmax", digits.input_shape, 10, seed=0)
    with pytest.raises(InputError, match="ReLU"):
        entangle(softmax, digits.victim, wm.inputs, int(wm.labels[0]), TrainConfig(epochs=1))


def test_an_entangled_mark_carries_over_to_a_knockoff_thief_and_not_to_others(digits, small_cnn):
    """The attack the mark is for: a label-only Knockoff thief on the attacker split. Its
    copy repeats the triggers' label far beyond an independent model's rate; independent
    models are never called owned."""
    key = new_dynamic_key(digits, style="entangled", triggers=60, seed=3)
    wm = DynamicWatermark(key, digits)
    model = build_model("cnn", digits.input_shape, 10, seed=0)
    model.load_state_dict(small_cnn.state_dict())
    wm.embed(model, digits.victim, TrainConfig(epochs=10, lr=5e-4, cosine=False, seed=0))
    attack = load_entry("attacks", "knockoff-attacker-400").build()
    oracle = Oracle(model, digits.input_shape)
    thief = attack.run(AttackerResources(oracle, data=digits.attacker), seed=0).thief
    independent = [small_cnn, build_model("cnn", digits.input_shape, 10, seed=5)]
    assert wm.trigger_accuracy(thief) >= 0.3
    assert wm.trigger_accuracy(thief) > max(wm.trigger_accuracy(m) for m in independent) + 0.2
    for other in independent:
        assert not verify(other, key, digits, fpr=1e-6).owned
