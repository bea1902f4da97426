"""The distribution-shift detector: calibrated false-alarm behaviour on benign clients,
fast alarms on off-distribution queries, and the cross-client (global) mode."""

import numpy as np
import pytest

from vtrust.catalog import load_entry
from vtrust.data.natural import natural_image_pool
from vtrust.defenses.deployment import DefenseContext, Deployment, build_defense
from vtrust.defenses.shift import ShiftDetector, ShiftParams
from vtrust.errors import InputError


@pytest.fixture(scope="module")
def shift(small_mlp, digits):
    return build_defense(load_entry("defenses", "shift"), DefenseContext(small_mlp, digits.victim))


def probs_for(x):
    return np.full((len(x), 10), 0.1)


def test_benign_rate_is_near_p0_and_nobody_is_flagged(shift, digits):
    atypical = shift.density.atypical(digits.test.x).mean()
    assert atypical < 0.05
    for client in range(20):
        order = np.random.default_rng(client).permutation(len(digits.test))
        assert shift.observe(f"benign{client}", digits.test.x[order], probs_for(order)).at is None


def test_natural_images_and_noise_are_caught_within_a_few_queries(shift, digits):
    natural = natural_image_pool(50, digits.input_shape, seed=0)
    noise = np.random.default_rng(0).random((50, *digits.input_shape)).astype(np.float32)
    for name, x in (("natural", natural), ("noise", noise)):
        decision = shift.observe(name, x, probs_for(x))
        assert decision.at is not None and decision.at < 10


def test_global_scope_catches_an_attacker_split_over_many_ids(small_mlp, digits):
    natural = natural_image_pool(400, digits.input_shape, seed=1)
    per_client = Deployment.of(["shift"]).oracle(small_mlp, digits.victim)
    device = Deployment.of(["shift-global"]).oracle(small_mlp, digits.victim)
    rng = np.random.default_rng(0)
    benign = digits.test.x
    for i in range(200):  # 2 attack queries per id, interleaved with benign traffic
        for oracle in (per_client, device):
            oracle.query(natural[2 * i : 2 * i + 2], client_id=f"sybil{i}")
            oracle.query(benign[rng.integers(0, len(benign), 2)], client_id=f"user{i % 20}")

    def flagged(oracle, prefix):
        return sum(
            1 for cid, rec in oracle.clients.items() if cid.startswith(prefix) and rec.flagged_at
        )

    assert flagged(per_client, "sybil") == 0
    assert flagged(device, "sybil") > 50 and flagged(device, "user") == 0
    assert device.defenses[0].states["*"].alarms >= flagged(device, "sybil")


def test_global_scope_attributes_nothing_to_one_query_ids_but_still_alarms(small_mlp, digits):
    natural = natural_image_pool(100, digits.input_shape, seed=3)
    device = Deployment.of(["shift-global"]).oracle(small_mlp, digits.victim)
    for i in range(100):
        device.query(natural[i : i + 1], client_id=f"sybil{i}")
    assert not any(rec.flagged_at for rec in device.clients.values())
    assert device.defenses[0].states["*"].alarms >= 1


def test_state_round_trip_keeps_the_cusum(tmp_path, shift, digits):
    det = ShiftDetector()
    det.density = shift.density
    natural = natural_image_pool(3, digits.input_shape, seed=2)
    det.states["c"] = det.new_state()
    det.update(det.states["c"], natural, probs_for(natural), "c")
    det.save_state(tmp_path / "s.npz")
    again = ShiftDetector()
    again.load_state(tmp_path / "s.npz")
    assert again.states["c"].cusum == pytest.approx(det.states["c"].cusum)
    assert again.states["c"].queries == 3


def test_needs_binding_and_valid_parameters(digits):
    with pytest.raises(InputError, match="bind"):
        ShiftDetector().observe("c", digits.test.x[:2], probs_for(digits.test.x[:2]))
    with pytest.raises(InputError):
        ShiftParams(p0=0.6, p1=0.5)
    with pytest.raises(InputError):
        ShiftParams(scope="planet")
