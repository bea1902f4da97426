import numpy as np
import pytest
import torch

from vtrust.attacks.direct import DirectStealing, DirectStealingParams
from vtrust.attacks.removal.common import nonzero_fraction, sweep, weight_tensors
from vtrust.attacks.removal.distill import Distill, DistillParams
from vtrust.attacks.removal.finetune import FineTune, FineTuneParams
from vtrust.attacks.removal.noise import WeightNoise, WeightNoiseParams
from vtrust.attacks.removal.pruning import FinePrune, FinePruneParams, Prune, PruneParams
from vtrust.attacks.removal.quantization import Quantize, QuantizeParams
from vtrust.catalog import load_entry
from vtrust.errors import InputError


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_attacks_work_on_a_copy(small_mlp, digits):
    before = weights(small_mlp)
    Prune(PruneParams()).apply(small_mlp, digits.attacker, 0.9)
    FineTune(FineTuneParams()).apply(small_mlp, digits.attacker, 1)
    assert all(torch.equal(before[k], v) for k, v in small_mlp.state_dict().items())


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_magnitude_pruning_reaches_the_sparsity(small_mlp, digits, scope):
    pruned = Prune(PruneParams(scope=scope)).apply(small_mlp, digits.attacker, 0.6)
    assert nonzero_fraction(pruned) == pytest.approx(0.4, abs=0.01)
    if scope == "layer":
        for _, w in weight_tensors(pruned):
            assert (w == 0).float().mean().item() == pytest.approx(0.6, abs=0.01)
    kept = [w.abs()[w != 0].min().item() for _, w in weight_tensors(pruned)]
    dropped = [w.abs().max().item() for _, w in weight_tensors(small_mlp)]
    assert min(kept) > 0 and max(dropped) > 0


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_quantization_levels(small_mlp, digits, bits):
    q = Quantize(QuantizeParams()).apply(small_mlp, digits.attacker, bits)
    for _, w in weight_tensors(q):
        assert len(torch.unique(w)) <= 2**bits - 1


@pytest.mark.parametrize("mode", ["ftll", "ftal", "rtll", "rtal"])
def test_fine_tuning_modes(small_mlp, digits, mode):
    tuned = FineTune(FineTuneParams(mode=mode)).apply(small_mlp, digits.attacker, 1, seed=0)
    first_changed = not torch.equal(tuned.layers.fc1.weight, small_mlp.layers.fc1.weight)
    assert first_changed == (mode in ("ftal", "rtal"))
    assert not torch.equal(tuned.head.weight, small_mlp.head.weight)


def test_reinitialised_head_starts_from_scratch(small_mlp, digits):
    zero = FineTune(FineTuneParams(mode="rtll")).apply(small_mlp, digits.attacker, 0, seed=0)
    from vtrust.models import accuracy

    assert accuracy(zero, digits.test) < 0.5 < accuracy(small_mlp, digits.test)


def test_fine_pruning_keeps_pruned_units_dead(small_mlp, digits):
    attacked = FinePrune(FinePruneParams(epochs=2)).apply(small_mlp, digits.attacker, 0.5)
    dead = (attacked.layers.fc2.weight.abs().sum(1) == 0).nonzero().flatten()
    assert len(dead) == 32
    assert torch.all(attacked.head.weight[:, dead] == 0)
    with pytest.raises(InputError):
        from vtrust.models import build_model

        FinePrune(FinePruneParams()).apply(
            build_model("softmax", (1, 8, 8), 10), digits.attacker, 0.5
        )


def test_weight_noise_is_seeded_and_scaled(small_mlp, digits):
    attack = WeightNoise(WeightNoiseParams())
    a = attack.apply(small_mlp, digits.attacker, 0.5, seed=1)
    b = attack.apply(small_mlp, digits.attacker, 0.5, seed=1)
    assert torch.equal(a.layers.fc1.weight, b.layers.fc1.weight)
    delta = (a.layers.fc1.weight - small_mlp.layers.fc1.weight).std()
    assert delta.item() == pytest.approx(0.5 * small_mlp.layers.fc1.weight.std().item(), rel=0.05)


@pytest.mark.parametrize("targets", ["soft", "labels"])
def test_distillation_trains_a_fresh_student(mlp_victim, digits, targets):
    student = Distill(DistillParams(targets=targets)).apply(mlp_victim, digits.attacker, 30)
    assert not torch.equal(student.layers.fc1.weight, mlp_victim.layers.fc1.weight)
    from vtrust.models import agreement

    assert agreement(student, mlp_victim, digits.test.x) > 0.85


def test_sweep_rows_follow_strengths(small_mlp, digits):
    rows = sweep(
        load_entry("attacks", "prune-global").build(),
        small_mlp,
        digits.attacker,
        digits.test,
        metrics={"density": nonzero_fraction},
    )
    assert [r["strength"] for r in rows] == [0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert rows[0]["fidelity"] > 0.9 > rows[-1]["accuracy"]
    assert np.all(np.diff([r["density"] for r in rows]) < 0)


def test_direct_stealing_compares_with_scratch(mlp_victim, digits):
    params = DirectStealingParams(fractions=[0.05, 0.5], missing_layers=["layers.fc1"], epochs=10)
    rows = DirectStealing(params).run(mlp_victim, digits.attacker, digits.test, victim=mlp_victim)
    assert [r["fraction"] for r in rows] == [0.05, 0.5]
    assert rows[0]["stolen_accuracy"] < 0.85  # the first layer was never stolen (victim: 0.976)
    assert all(r["finetuned_accuracy"] > r["scratch_accuracy"] for r in rows)
    with pytest.raises(InputError, match="no resettable"):
        DirectStealing(DirectStealingParams(missing_layers=["nope"])).run(
            mlp_victim, digits.attacker, digits.test
        )
