"""CloudLeak (label-only queries pushed across the substitute's boundary) and the
data-free thief (generator-synthesised queries, no attacker data)."""

import dataclasses

import numpy as np
import pytest
import torch

from vtrust.attacks.extraction.cloudleak import to_boundary
from vtrust.attacks.extraction.datafree import DataFreeParams, Generator, train_generator
from vtrust.catalog import CatalogError, load_entry, parse_entry
from vtrust.defenses.deployment import Deployment
from vtrust.evaluation.attacks import run_entry
from vtrust.models.training import predict_proba


def quick(name, **changes):
    entry = load_entry("attacks", name)
    return dataclasses.replace(entry, params=dataclasses.replace(entry.params, **changes))


def test_boundary_examples_change_the_substitutes_label_within_the_ball(mlp_victim, digits):
    x = digits.test.x[:100]
    adv = to_boundary(mlp_victim, x, eps=0.25, step=0.02, iterations=20)
    before, after = (predict_proba(mlp_victim, v).argmax(1) for v in (x, adv))
    assert np.abs(adv - x).max() <= 0.25 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert (after != before).mean() > 0.9
    # minimal: one step less would not have crossed for most of them
    assert np.abs(adv - x).max(axis=(1, 2, 3)).mean() < 0.25


def test_cloudleak_is_label_only_and_queries_boundary_points(mlp_victim, digits):
    entry = quick("cloudleak-2k", budget=300, rounds=2, substitute_steps=100, thief_steps=100)
    result = run_entry(entry, mlp_victim, digits, seed=0, curve=False)
    assert result["queries"] == 300 and result["details"]["labels_only"]
    assert min(result["details"]["crossed_share"]) > 0.5
    assert result["fidelity"] > 0.5  # the victim's labels near its boundary teach a lot


def test_cloudleak_behind_the_default_preset_is_stopped_early(mlp_victim, digits):
    entry = quick("cloudleak-2k", budget=300, rounds=2, substitute_steps=100, thief_steps=50,
                  source="natural")  # fmt: skip
    result = run_entry(entry, mlp_victim, digits, deployment=Deployment.of(["default"]),
                       seed=0, curve=False)  # fmt: skip
    assert result["stopped"] and result["queries"] < 300


def test_the_generator_learns_what_the_substitute_calls_each_class(mlp_victim, digits):
    params = DataFreeParams(generator_steps=150, diversity=0.5)
    generator = Generator(params.noise_dim, 10, digits.input_shape)
    gen = torch.Generator().manual_seed(0)
    classes = torch.arange(10).repeat(20)
    z = torch.randn(len(classes), params.noise_dim, generator=gen)
    with torch.no_grad():
        untrained = (mlp_victim(generator(z, classes)).argmax(1) == classes).float().mean()
    train_generator(generator, mlp_victim, params, gen)
    with torch.no_grad():
        images = generator(z, classes)
        trained = (mlp_victim(images).argmax(1) == classes).float().mean()
    assert trained > 0.8 > untrained
    assert all(p.requires_grad for p in mlp_victim.parameters())  # handed back trainable
    # mode seeking: images of one class are not all the same image
    assert images[classes == 3].std(dim=0).mean() > 0.01


def test_the_data_free_thief_needs_no_attacker_data(mlp_victim, digits):
    no_data = dataclasses.replace(digits, attacker=digits.attacker.subset(np.arange(0)))
    entry = quick("data-free-2k", budget=200, rounds=2, generator_steps=20,
                  substitute_steps=50, thief_steps=50)  # fmt: skip
    result = run_entry(entry, mlp_victim, no_data, seed=0, curve=False)
    assert result["queries"] == 200 and result["thief_accuracy"] > 0.1


@pytest.mark.parametrize(("kind", "params"), [
    ("cloudleak", "eps = 0"), ("cloudleak", "step = 0.5\neps = 0.1"), ("cloudleak", "rounds = 0"),
    ("data-free", "rounds = 0"), ("data-free", "diversity = -1"),
])  # fmt: skip
def test_bad_settings_are_catalog_errors(kind, params):
    with pytest.raises(CatalogError):
        parse_entry("attacks", f'kind = "{kind}"\n[params]\n{params}', name="bad",
                    source="bad.toml")  # fmt: skip
