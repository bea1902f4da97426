"""Deployment presets: several defenses under one name, acting on alarm."""

import dataclasses

import numpy as np
import pytest

from vtrust.attacks.base import ThiefTraining
from vtrust.catalog import CatalogError, load_entry, parse_entry
from vtrust.data.natural import natural_image_pool
from vtrust.defenses.deployment import Deployment
from vtrust.defenses.preset import PresetDefense, leaf_defenses
from vtrust.errors import InputError, QueryRefused
from vtrust.evaluation import defenses as ev


def test_default_preset_refuses_a_natural_image_client_and_serves_benign_ones(mlp_victim, digits):
    oracle = Deployment.of(["default"]).oracle(mlp_victim, digits.victim, seed=0)
    (preset,) = oracle.defenses
    assert [m.name for m in preset.members] == ["shift-refuse", "misinformation", "prada-poison",
                                               "shift-global"]  # fmt: skip
    with pytest.raises(QueryRefused) as refused:
        oracle.query(natural_image_pool(200, digits.input_shape, seed=1), client_id="thief")
    assert refused.value.defense == "default" and refused.value.queries < 20
    answers = oracle.query(digits.test.x[:200], client_id="benign")
    assert (answers.argmax(1) == mlp_victim_labels(mlp_victim, digits.test.x[:200])).all()
    assert oracle.client("benign").refused_by is None


def mlp_victim_labels(model, x):
    from vtrust.models.training import predict_proba

    return predict_proba(model, x).argmax(1)


def test_preset_refuses_from_the_earliest_member_refusal_and_names_it(mlp_victim, digits):
    entry = parse_entry("defenses", 'kind = "preset"\n[params]\nmembers = ["limit-1k", '
                        '"shift-refuse"]', name="two", source="two.toml")  # fmt: skip
    oracle = Deployment((entry,)).oracle(mlp_victim, digits.victim, seed=0)
    decision = oracle.defenses[0].observe("c", *batch(mlp_victim, digits, 1100))
    assert decision.verdict.value == "refuse" and decision.at < 20
    assert decision.reason.startswith("shift-refuse:")


def batch(model, digits, n):
    x = np.concatenate([natural_image_pool(n - 100, digits.input_shape, seed=2),
                        digits.test.x[:100]])  # fmt: skip
    from vtrust.models.training import predict_proba

    return x, predict_proba(model, x)


@pytest.mark.parametrize(
    ("members", "message"),
    [("[]", "at least one"), ('["prada", "prada"]', "twice")],
)
def test_malformed_presets_are_catalog_errors(members, message):
    with pytest.raises(CatalogError, match=message):
        parse_entry("defenses", f'kind = "preset"\n[params]\nmembers = {members}',
                    name="bad", source="bad.toml")  # fmt: skip


def test_presets_do_not_nest(mlp_victim, digits, tmp_path):
    inner = tmp_path / "inner.toml"
    inner.write_text('kind = "preset"\n[params]\nmembers = ["prada"]\n')
    outer = parse_entry("defenses", f'kind = "preset"\n[params]\nmembers = ["{inner}"]',
                        name="outer", source="outer.toml")  # fmt: skip
    with pytest.raises(InputError, match="do not nest"):
        Deployment((outer,)).oracle(mlp_victim, digits.victim)


def test_leaf_defenses_expand_presets(mlp_victim, digits):
    oracle = Deployment.of(["default", "round-2"]).oracle(mlp_victim, digits.victim, seed=0)
    assert isinstance(oracle.defenses[0], PresetDefense)
    names = [d.name for d in leaf_defenses(oracle.defenses)]
    assert names == ["shift-refuse", "misinformation", "prada-poison", "shift-global", "round-2"]


def test_a_thief_refused_after_a_few_queries_trains_its_step_budget_not_more():
    training = ThiefTraining(steps=1500, batch_size=64)
    assert training.config(4, 0).epochs == 1500  # one step per epoch
    assert training.config(2500, 0).epochs == 39  # ⌈1500 · 64 / 2500⌉, as before
    assert training.config(64, 0).epochs == 1500


def test_served_to_benign_counts_refusals_as_wrong_answers(mlp_victim, digits):
    tight = dataclasses.replace(load_entry("defenses", "limit-1k"),
                                params=dataclasses.replace(load_entry("defenses", "limit-1k")
                                                           .params, max_queries=100))  # fmt: skip
    served = ev.served_to_benign(mlp_victim, digits, Deployment((tight,)), clients=3)
    assert served["refused"] == 3 and served["queries_per_client"] == len(digits.test)
    assert served["accuracy_served"] < served["accuracy_undefended"] * 100 / len(digits.test) + 1e-9
    clear = ev.served_to_benign(mlp_victim, digits, Deployment.of(["default"]), clients=3)
    assert clear["refused"] == 0 and clear["accuracy_served"] == clear["accuracy_undefended"]
