"""The defense studies' building blocks on small settings."""

import dataclasses

import pytest

from vtrust.catalog import load_entry
from vtrust.evaluation import defenses as ev


def test_benign_traffic_has_no_repeats_and_differs_per_client(digits):
    streams = ev.benign_traffic(digits.test, clients=3, per_client=50, seed=0)
    assert [cid for cid, _ in streams] == ["benign-000", "benign-001", "benign-002"]
    first, second = streams[0][1], streams[1][1]
    assert len({x.tobytes() for x in first}) == 50
    assert any((a != b).any() for a, b in zip(first, second, strict=True))


def test_false_positives_and_split_attacker(mlp_victim, digits):
    detectors = [load_entry("defenses", n) for n in ("prada", "shift")]
    fp = ev.false_positives(mlp_victim, digits, detectors, clients=5)
    assert fp["prada"]["flagged"] == 0 and fp["shift"]["flagged"] == 0
    assert fp["prada"]["queries_per_client"] == len(digits.test)
    assert 0.9 < fp["prada"]["lowest_w"] < 1.0
    split_entries = [load_entry("defenses", n) for n in ("shift", "shift-global")]
    split = ev.split_attacker(
        mlp_victim, digits, split_entries, total=200, per_id=4, benign_clients=10
    )
    assert split["shift"]["attacker_ids_flagged"] == 0  # 4 queries never reach h = 16
    assert split["shift-global"]["attacker_ids_flagged"] > 10
    assert split["shift-global"]["benign_flagged"] == 0


def with_thief_steps(entry, steps):
    """The entry with a shorter thief training (4 thieves train in this test)."""
    return dataclasses.replace(entry, params=dataclasses.replace(entry.params, thief_steps=steps))


def test_poisoning_sweep_rows(mlp_victim, digits):
    mad = load_entry("defenses", "mad-argmax")
    rows = ev.poisoning(
        mlp_victim,
        digits,
        [(mad, "epsilon", (1.0,))],
        with_thief_steps(load_entry("attacks", "knockoff-attacker-probs"), 400),
        budget=300,
    )
    base, defended = rows
    assert base["defense"] == "none" and base["distortion_l1"] == 0.0
    assert defended["value"] == 1.0 and defended["defender_accuracy"] == base["defender_accuracy"]
    assert defended["distortion_l1"] > 0.5
    assert defended["thief_accuracy_probs"] < base["thief_accuracy_probs"] - 0.1
    assert abs(defended["thief_accuracy_labels"] - base["thief_accuracy_labels"]) < 1e-9


def test_a_sweep_point_may_set_several_parameters_at_once():
    entry = load_entry("defenses", "reverse-sigmoid")
    point = ev.with_strength(entry, "beta,gamma", (2.0, 0.7))
    assert (point.params.beta, point.params.gamma) == (2.0, 0.7)
    assert point.name == "reverse-sigmoid[beta=2.0,gamma=0.7]"
    assert ev.with_strength(entry, "beta", 0.5).params.gamma == entry.params.gamma
    with pytest.raises(ValueError, match="2 parameters, 1 values"):
        ev.with_strength(entry, "beta,gamma", (2.0,))
