import numpy as np
import pytest
import torch

from vtrust.attacks.base import AttackerResources, QuerySession
from vtrust.attacks.extraction.activethief import ActiveThief, ActiveThiefParams, k_center_greedy
from vtrust.attacks.extraction.common import draw_inputs
from vtrust.attacks.extraction.equation import EquationSolving, EquationSolvingParams
from vtrust.attacks.extraction.jbda import JBDA, JBDAParams, targeted_ifgsm
from vtrust.attacks.extraction.knockoff import Knockoff, KnockoffParams
from vtrust.attacks.extraction.sampling import CopycatParams, PoolSampling, RandomQueriesParams
from vtrust.catalog import load_entry
from vtrust.defenses.deployment import Deployment
from vtrust.defenses.limits import QueryLimit, QueryLimitParams
from vtrust.evaluation.attacks import budget_curve, parameter_error, run_entry, run_extraction
from vtrust.oracle import Oracle, OutputMode


def resources(model, digits, **kw):
    return AttackerResources(Oracle(model, digits.input_shape, **kw), data=digits.attacker)


def test_equation_solving_recovers_softmax_regression(softmax_victim, digits):
    summary, result = run_extraction(EquationSolving(), softmax_victim, digits, curve=False)
    assert result.queries == 65 and result.details["determined"]
    assert summary["max_relative_parameter_error"] <= 1e-6
    assert summary["fidelity"] == 1.0


def test_equation_solving_with_random_design_and_least_squares(softmax_victim, digits):
    attack = EquationSolving(EquationSolvingParams(design="uniform", oversample=3.0))
    result = attack.run(resources(softmax_victim, digits), seed=1)
    assert result.queries == 195
    assert parameter_error(result.thief, softmax_victim) < 1e-3


def test_equation_solving_against_labels_is_reported_not_raised(softmax_victim, digits):
    summary, _ = run_extraction(
        EquationSolving(),
        softmax_victim,
        digits,
        deployment=Deployment(output=OutputMode.LABELS),
        curve=False,
    )
    assert summary["max_relative_parameter_error"] > 0.5 and summary["fidelity"] < 1.0


def test_knockoff_label_only_from_attacker_split(mlp_victim, digits):
    result = run_entry(
        load_entry("attacks", "knockoff-attacker-400"), mlp_victim, digits, curve=False
    )
    assert result["queries"] == 400 and result["params"]["labels_only"]
    assert result["fidelity"] >= 0.93


def test_jbda_from_100_seeds_in_6_rounds(mlp_victim, digits):
    result = run_entry(load_entry("attacks", "jbda"), mlp_victim, digits, curve=False)
    assert result["details"]["rounds"] <= 6 and result["details"]["set_sizes"][0] == 100
    assert result["thief_accuracy"] >= 0.80


@pytest.mark.parametrize("variant", ["jbda", "jb-self", "jb-top3"])
def test_jbda_variants_grow_the_set_within_budget(small_mlp, digits, variant):
    params = JBDAParams(
        variant=variant, seed_size=20, rounds=2, budget=150, substitute_steps=30, thief_steps=30
    )
    result = JBDA(params).run(resources(small_mlp, digits), seed=0)
    assert result.queries <= 150 and result.queries > 20
    assert result.transfer_x.min() >= 0 and result.transfer_x.max() <= 1
    growth = 3 if variant == "jb-top3" else 1
    sizes = result.details["set_sizes"]
    assert sizes[1] == min(150, 20 + growth * 20)


def test_targeted_ifgsm_stays_in_the_ball(small_mlp, digits):
    x = digits.test.x[:16]
    adv = targeted_ifgsm(small_mlp, x, np.full(16, 3), eps=0.1)
    assert np.abs(adv - x).max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        before = torch.softmax(small_mlp(torch.from_numpy(x)), 1)[:, 3].mean()
        after = torch.softmax(small_mlp(torch.from_numpy(adv)), 1)[:, 3].mean()
    assert after > before


@pytest.mark.parametrize("strategy", ["random", "adaptive"])
def test_knockoff_strategies(small_mlp, digits, strategy):
    params = KnockoffParams(
        strategy=strategy, source="natural", budget=120, batch=10, pool_size=300, thief_steps=40
    )
    result = Knockoff(params).run(resources(small_mlp, digits), seed=0)
    assert result.queries == 120 and result.thief is not None
    if strategy == "adaptive":
        assert sum(result.details["pulls"]) >= 12  # a nearly empty cluster yields a short batch


@pytest.mark.parametrize("strategy", ["uncertainty", "k-center"])
def test_activethief(small_mlp, digits, strategy):
    params = ActiveThiefParams(
        strategy=strategy, budget=100, pool_size=400, rounds=3, round_steps=20, thief_steps=20
    )
    result = ActiveThief(params).run(resources(small_mlp, digits), seed=0)
    assert result.queries == 100
    assert len({x.tobytes() for x in result.transfer_x}) == 100  # never asks twice


def test_k_center_greedy_is_farthest_first():
    labelled = np.zeros((1, 2))
    candidates = np.array([[1.0, 0], [5.0, 0], [4.9, 0], [0, 3.0]])
    assert list(k_center_greedy(candidates, labelled, 3)) == [1, 3, 0]


def test_copycat_and_label_oracles_give_one_hot_targets(small_mlp, digits):
    attack = PoolSampling(CopycatParams(budget=50, thief_steps=10))
    result = attack.run(resources(small_mlp, digits), seed=0)
    assert set(np.unique(result.transfer_y)) == {0.0, 1.0}
    attack = PoolSampling(RandomQueriesParams(budget=50, thief_steps=10))
    result = attack.run(resources(small_mlp, digits, output="labels"), seed=0)
    assert np.allclose(result.transfer_y.sum(1), 1) and set(np.unique(result.transfer_y)) == {
        0.0,
        1.0,
    }


def test_attacker_source_draws_without_replacement(small_mlp, digits):
    res = resources(small_mlp, digits)
    x = draw_inputs("attacker", len(digits.attacker), res, np.random.default_rng(0))
    assert len({row.tobytes() for row in x}) == len({row.tobytes() for row in digits.attacker.x})


def test_session_never_exceeds_budget(small_mlp, digits):
    session = QuerySession(resources(small_mlp, digits), 30, labels_only=False)
    assert len(session.ask(digits.test.x[:20])) == 20
    assert len(session.ask(digits.test.x[:20])) == 10
    assert len(session.ask(digits.test.x[:20])) == 0 and session.exhausted
    assert session.used == 30 and len(session.transfer_x) == 30


def test_refusing_defense_ends_attack_with_a_result(small_mlp, digits):
    res = AttackerResources(
        Oracle(small_mlp, digits.input_shape, defenses=[QueryLimit(QueryLimitParams(130))]),
        data=digits.attacker,
    )
    result = JBDA(JBDAParams(seed_size=50, rounds=4, substitute_steps=20, thief_steps=20)).run(res)
    assert result.queries == 130 and "refused by query-limit" in result.stopped
    assert result.thief is not None and len(result.transfer_x) == 130
    res.oracle.defenses[0].params = QueryLimitParams(0)
    res.client_id = "other"
    result = PoolSampling(RandomQueriesParams(budget=50)).run(res)
    assert result.queries == 0 and result.thief is None and result.stopped


def test_budget_curve(small_mlp, digits):
    attack = PoolSampling(RandomQueriesParams(budget=200, source="gaussian", thief_steps=30))
    result = attack.run(resources(small_mlp, digits), seed=0)
    rows = budget_curve(attack, result, small_mlp, digits.test, fractions=(0.25, 0.5, 1.0))
    assert [r["queries"] for r in rows] == [50, 100, 200]
    assert all(0 <= r["fidelity"] <= 1 for r in rows)


def test_attacks_never_touch_victim_weights(small_mlp, digits):
    before = {k: v.clone() for k, v in small_mlp.state_dict().items()}
    JBDA(JBDAParams(seed_size=10, rounds=1, budget=20, substitute_steps=5, thief_steps=5)).run(
        resources(small_mlp, digits)
    )
    assert all(torch.equal(before[k], v) for k, v in small_mlp.state_dict().items())
