"""Thieves that have read the detectors: id tactics (sybil rotation, a fresh id after a
refusal), density-aware pool selection, refusal-aware rejection sampling, and JBDA that
shapes its distance stream for PRADA."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust.attacks.base import AttackerResources, IdTactics, QuerySession
from vtrust.attacks.extraction.jbda import JBDA
from vtrust.catalog import CatalogError, load_entry, parse_entry
from vtrust.data.natural import natural_image_pool
from vtrust.defenses.deployment import Deployment
from vtrust.defenses.shift import DensityModel
from vtrust.errors import InputError
from vtrust.evaluation.attacks import run_entry


def quick(name, **changes):
    entry = load_entry("attacks", name)
    params = dataclasses.replace(entry.params, thief_steps=50, **changes)
    return dataclasses.replace(entry, params=params)


def test_sybil_rotation_never_lets_a_per_client_detector_see_enough(mlp_victim, digits):
    behind = Deployment.of(["shift-refuse", "shift-global"])
    result = run_entry(quick("knockoff-sybil", budget=200), mlp_victim, digits,
                       deployment=behind, curve=False)  # fmt: skip
    assert result["queries"] == 200 and result["client_ids"] == 50
    assert not result["defenses"]["shift-refuse"]["flagged"]
    assert result["defenses"]["shift-global"]["ids_flagged"] > 5  # the device's view


def test_a_fresh_id_after_each_refusal_gets_the_whole_budget(mlp_victim, digits):
    behind = Deployment.of(["shift-refuse"])
    plain = run_entry(quick("knockoff-natural-2k", budget=200), mlp_victim, digits,
                      deployment=behind, curve=False)  # fmt: skip
    adaptive = run_entry(quick("knockoff-new-id", budget=200), mlp_victim, digits,
                         deployment=behind, curve=False)  # fmt: skip
    assert plain["queries"] < 10 and plain["stopped"].startswith("refused")
    assert adaptive["queries"] == 200 and adaptive["stopped"] is None
    assert (
        adaptive["refused_ids"] >= 20 and adaptive["defenses"]["shift-refuse"]["ids_flagged"] >= 20
    )


def test_a_device_limit_stops_a_fresh_id_thief(mlp_victim, digits):
    from vtrust.enclave.metered_device import MeteredDevice
    from vtrust.enclave.usage_ledger import UsageLedger
    from vtrust.oracle import Oracle

    ledger = UsageLedger.generate()
    device = MeteredDevice(mlp_victim, device="d", owner_public=ledger.owner_public)
    ledger.register("d", device.meter_public)
    device.apply(ledger.grant("d", 30))
    session = QuerySession(AttackerResources(Oracle(device.target())), 100, labels_only=True,
                           tactics=IdTactics(on_refusal="new-id"))  # fmt: skip
    assert len(session.ask(digits.test.x[:100])) == 30
    assert session.stopped.startswith("refused by meter") and len(session.ids) == 1


def test_row_clients_name_the_id_each_answer_came_under(mlp_victim, digits):
    from vtrust.oracle import Oracle

    session = QuerySession(AttackerResources(Oracle(mlp_victim, digits.input_shape)), 10,
                           labels_only=False, tactics=IdTactics(rotate_every=3))  # fmt: skip
    session.ask(digits.test.x[:10])
    assert session.row_clients == [f"attacker-{i // 3:05d}" for i in range(10)]
    assert session.ids == {f"attacker-{k:05d}": 3 * k for k in range(4)}


def test_density_selection_picks_what_the_defenders_density_finds_more_typical(digits):
    from vtrust.attacks.extraction.evasive import AttackerDensity

    pool = natural_image_pool(3000, digits.input_shape, seed=1)
    rng = np.random.default_rng(0)
    attacker = AttackerDensity(digits.attacker.x[rng.permutation(len(digits.attacker))[:50]], 10, 0)
    chosen = np.argsort(-attacker.score(pool))[:300]
    defender = DensityModel(digits.victim.x, 20, 0.01, 5, 0)
    assert np.median(defender.score(pool[chosen])) > np.median(defender.score(pool)) + 20


def test_refusal_aware_thief_learns_to_reject_candidates(mlp_victim, digits):
    result = run_entry(quick("knockoff-refusal-aware", budget=150, pool_size=3000), mlp_victim,
                       digits, deployment=Deployment.of(["shift-refuse"]), curve=False)  # fmt: skip
    assert result["refused_ids"] >= 2 and result["details"]["rejected"] > 0
    assert result["client_ids"] == result["refused_ids"] + 1


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_benign_distance_estimate_is_the_nearest_same_class_neighbour(seed):
    """Law: against a brute-force loop over every pair."""
    rng = np.random.default_rng(seed)
    x = rng.random((12, 1, 2, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 12)
    got = np.sort(JBDA.benign_distances(x, labels))
    want = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        for i in idx if len(idx) > 1 else []:
            want.append(min(np.linalg.norm((x[i] - x[j]).ravel()) for j in idx if j != i))
    np.testing.assert_allclose(got, np.sort(want), rtol=1e-6, atol=1e-6)


def test_shaped_jbda_steps_have_benign_lengths(mlp_victim, digits):
    entry = quick("jbda-evasive", budget=300, rounds=1, mix_natural=0.0, substitute_steps=50)
    result = run_entry(entry, mlp_victim, digits, curve=False)
    assert result["queries"] == 200  # 100 seeds, 100 shaped steps


def test_bad_adaptive_settings_are_refused():
    with pytest.raises(InputError):
        IdTactics(rotate_every=-1)
    with pytest.raises(InputError):
        IdTactics(on_refusal="retry")
    for params in ('variant = "jb-top3"\nshape_distances = true', "mix_natural = 1.0"):
        with pytest.raises(CatalogError):
            parse_entry("attacks", f'kind = "jbda"\n[params]\n{params}', name="b", source="b")
    with pytest.raises(CatalogError, match="new id"):
        parse_entry("attacks", 'kind = "refusal-aware"\n[params]\non_refusal = "stop"',
                    name="b", source="b")  # fmt: skip
    with pytest.raises(CatalogError):
        parse_entry("attacks", 'kind = "line-search"\n[params]\nmix_natural = 1.0', name="b",
                    source="b")  # fmt: skip


def test_line_search_between_own_images_with_bounded_steps_outlasts_prada(mlp_victim, digits):
    """Plain line search from uniform seeds is refused by PRADA after ≈ 120 queries; the
    evasive entry's bisection never steps below a benign gap, and is not."""
    prada = Deployment.of(["prada-refuse"])
    plain = run_entry(quick("line-search-2k", budget=600), mlp_victim, digits,
                      deployment=prada, seed=0, curve=False)  # fmt: skip
    evasive = run_entry(quick("line-search-evasive", budget=600), mlp_victim, digits,
                        deployment=prada, seed=0, curve=False)  # fmt: skip
    assert plain["stopped"] and plain["queries"] < 200
    assert evasive["queries"] == 600 and not evasive["stopped"]


def test_nearest_gaps_are_the_distances_to_the_nearest_other_image():
    from vtrust.attacks.extraction.sampling import nearest_gaps

    x = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0]]).reshape(3, 1, 1, 2)
    assert np.allclose(nearest_gaps(x), [5.0, 1.0, 1.0])
