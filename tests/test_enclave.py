"""The simulated enclave: Freivalds' check, split execution, Slalom, attestation."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust import keystream
from vtrust.enclave import modp
from vtrust.enclave.attest import DeviceIdentity, QuoteVerifier, aggregate
from vtrust.enclave.costs import CostModel
from vtrust.enclave.freivalds import FreivaldsCheck
from vtrust.enclave.runtime import Enclave
from vtrust.enclave.slalom import SlalomNetwork, TamperingHost
from vtrust.enclave.split import SplitModel, SplitSpec, inside_layers, units
from vtrust.errors import AttestationError, InputError, SealError, TamperDetected


# -- modular arithmetic and Freivalds ---------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 9), k=st.integers(1, 40), m=st.integers(1, 9))
def test_field_products_match_python_integers(seed, n, k, m):
    rng = np.random.default_rng(seed)
    stream = keystream.from_seed(seed)  # test data, not secrets
    x = modp.random(stream, (n, k))
    w = rng.integers(-127, 128, (m, k))

    def dot(row, col):
        return sum(int(a) * int(b) for a, b in zip(row, col, strict=True)) % modp.P

    assert modp.matmul(x, w).tolist() == [[dot(row, col) for col in w] for row in x]
    v = modp.random(stream, (k,))
    assert modp.matvec(x, v).tolist() == [dot(row, v) for row in x]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000), n=st.integers(1, 12), k=st.integers(1, 30), m=st.integers(1, 12)
)
def test_freivalds_accepts_correct_products_and_any_single_changed_element(seed, n, k, m):
    rng = np.random.default_rng(seed)
    stream = keystream.from_seed(seed)  # test data, not secrets
    x, w = modp.random(stream, (n, k)), rng.integers(-127, 128, (m, k))
    check = FreivaldsCheck.prepare(w, stream, repetitions=2)
    y = modp.matmul(x, w)
    assert check.check(x, y)
    i, j = int(rng.integers(n)), int(rng.integers(m))
    bad = y.copy()
    bad[i, j] = (bad[i, j] + int(rng.integers(1, modp.P))) % modp.P
    assert not check.check(x, bad)
    assert not check.check(x, y[:, :-1]) and not check.check(x, y + modp.P)


def test_every_single_changed_element_of_a_512_product_is_detected():
    rng = np.random.default_rng(0)
    stream = keystream.from_seed(0)  # test data, not secrets
    x, w = modp.random(stream, (512, 512)), rng.integers(-127, 128, (512, 512))
    check = FreivaldsCheck.prepare(w, stream)
    y = modp.matmul(x, w)
    assert check.check(x, y) and check.error_bound < 1e-14
    for flat in rng.choice(y.size, 300, replace=False):
        bad = y.copy().ravel()
        bad[flat] = (bad[flat] + 1) % modp.P
        assert not check.check(x, bad.reshape(y.shape))


# -- the enclave runtime -----------------------------------------------------------------
def run_part(inside, x):
    return inside.part(x)


def test_the_boundary_counts_calls_and_bytes_and_charges_costs():
    cost = CostModel(crossing_seconds=1.0, copy_seconds_per_byte=0.0, epc_bytes=4096,
                     page_seconds=2.0)  # fmt: skip
    enclave = Enclave(torch.nn.Linear(64, 64), role="t", cost=cost, entry_points=(run_part,))
    out = enclave.ecall(run_part, torch.zeros(8, 64))
    ledger = enclave.ledger
    assert out.shape == (8, 64) and ledger.calls == 1
    assert ledger.bytes_in == ledger.bytes_out == 8 * 64 * 4
    assert ledger.boundary == 1.0
    over = enclave.resident_bytes + 2 * 8 * 64 * 4 - 4096
    assert ledger.paging == -(-over // 4096) * 2.0  # pages above the budget


def test_sealed_storage_opens_only_in_the_same_enclave_on_the_same_device():
    part = torch.nn.Linear(4, 2)
    root = b"r" * 32
    a = Enclave(part, role="x", root_secret=root)
    blob = a.seal(b"pads")
    assert Enclave(part, role="x", root_secret=root).unseal(blob) == b"pads"
    for other in (Enclave(part, role="y", root_secret=root),
                  Enclave(part, role="x", root_secret=b"s" * 32)):  # fmt: skip
        with pytest.raises(SealError):
            other.unseal(blob)


# -- split execution ---------------------------------------------------------------------
def test_split_specs_parse_and_name_the_inside_layers(small_cnn):
    assert [len(u) for u in units(small_cnn)] == [3, 4, 2, 1]
    assert inside_layers(small_cnn, SplitSpec.parse("first:2")) == ["layers.conv1", "layers.conv2"]
    assert inside_layers(small_cnn, SplitSpec.parse("last:1")) == ["layers.fc2"]
    assert inside_layers(small_cnn, SplitSpec.parse("slalom")) == []
    for bad in ("first", "most:2", "first:-1", ""):
        with pytest.raises(InputError):
            SplitSpec.parse(bad)
    with pytest.raises(InputError):
        SplitSpec.parse("first:9").inside(4)


@pytest.mark.parametrize("spec", ["none", "all", "first:1", "first:3", "last:1", "last:2"])
def test_float_splits_give_exactly_the_plain_outputs(digits, small_cnn, spec):
    x = torch.from_numpy(digits.test.x[:50]).float()
    split = SplitModel(small_cnn, SplitSpec.parse(spec))
    with torch.no_grad():
        assert torch.equal(split.forward(x), small_cnn(x))
    if spec == "none":
        assert split.enclave is None
    else:  # one contiguous inside span: one call per batch
        assert split.enclave.ledger.calls == 1
    assert (split.host_seconds > 0) == (spec != "all")


# -- Slalom --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slalom_cnn(digits, small_cnn):
    net = SlalomNetwork(small_cnn, torch.from_numpy(digits.victim.x[:256]).float(), seed=0)
    net.precompute(4, 32)
    return net


def test_slalom_matches_the_plain_quantised_network_and_the_float_model(digits, small_cnn,
                                                                        slalom_cnn):  # fmt: skip
    x = torch.from_numpy(digits.test.x[:32]).float()
    out = slalom_cnn.forward(x)
    assert torch.equal(out, slalom_cnn.forward_plain(x))
    with torch.no_grad():
        agree = (out.argmax(1) == small_cnn(x).argmax(1)).float().mean()
    assert agree >= 0.9
    ledger = slalom_cnn.enclave.ledger
    assert ledger.calls > 0 and ledger.bytes_out > 0


def test_slalom_detects_a_tampered_result_in_any_layer(digits, slalom_cnn):
    x = torch.from_numpy(digits.test.x[:32]).float()
    for layer in range(len(slalom_cnn.ops)):
        if slalom_cnn.pads_left() == 0:
            slalom_cnn.precompute(1, 32)
        with pytest.raises(TamperDetected):
            slalom_cnn.forward(x, TamperingHost(slalom_cnn.ops, layer, position=7 * layer + 3))


def test_slalom_pads_are_used_once_and_refuse_other_batch_sizes(digits, small_cnn):
    net = SlalomNetwork(small_cnn, torch.from_numpy(digits.victim.x[:64]).float(), seed=1)
    x = torch.from_numpy(digits.test.x[:8]).float()
    net.precompute(1, 8)
    net.forward(x)
    with pytest.raises(InputError, match="no precomputed pads"):
        net.forward(x)
    net.precompute(1, 4)
    with pytest.raises(InputError, match="batches"):
        net.forward(x)


def test_slalom_blinds_what_the_host_sees(digits, small_cnn):
    """The host's inputs are uniform field elements, unrelated to the (mostly zero) pixels."""
    seen = []

    class Spy(TamperingHost):
        def linear(self, index, blinded):
            seen.append(blinded)
            return super(TamperingHost, self).linear(index, blinded)

    net = SlalomNetwork(small_cnn, torch.from_numpy(digits.victim.x[:64]).float(), seed=2)
    net.precompute(1, 64)
    net.forward(torch.from_numpy(digits.test.x[:64]).float(), Spy(net.ops, 0, 0))
    first = seen[0].ravel()
    assert (first == 0).mean() < 1e-3 and abs(first.mean() / modp.P - 0.5) < 0.02


def test_slalom_refuses_layers_it_cannot_run(digits):
    from vtrust.models import build_model

    quad = build_model("quad", digits.input_shape, digits.n_classes, seed=0)
    with pytest.raises(InputError, match="unsupported|not linear"):
        SlalomNetwork(quad, torch.from_numpy(digits.victim.x[:16]).float(), seed=0)


# -- attestation ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fleet():
    return [DeviceIdentity.generate(f"dev{i}", seed=i) for i in range(3)]


@pytest.mark.parametrize("scheme", ["ed25519", "bls12-381"])
def test_quotes_verify_once_and_reject_replays_and_changed_measurements(fleet, scheme):
    device = fleet[0]
    part = torch.nn.Linear(4, 2)
    enclave = Enclave(part, role="all")
    verifier = QuoteVerifier([d.public for d in fleet], enclave.measurement)
    nonce = verifier.challenge()
    quote = device.quote(enclave.measurement, nonce, scheme)
    verifier.verify(quote)
    with pytest.raises(AttestationError, match="replayed"):
        verifier.verify(quote)
    changed = torch.nn.Linear(4, 2)  # another model part → another measurement
    other = Enclave(changed, role="all")
    with pytest.raises(AttestationError, match="wrong measurement"):
        verifier.verify(device.quote(other.measurement, verifier.challenge(), scheme))
    forged = device.quote(enclave.measurement, verifier.challenge(), scheme)
    tampered = type(forged)(forged.device, forged.measurement, verifier.challenge(), forged.scheme,
                            forged.signature)  # fmt: skip
    with pytest.raises(AttestationError, match="signature"):
        verifier.verify(tampered)
    stranger = DeviceIdentity.generate("dev9", seed=9)
    with pytest.raises(AttestationError, match="unknown device"):
        verifier.verify(stranger.quote(enclave.measurement, verifier.challenge(), scheme))


def test_one_aggregate_bls_signature_covers_a_fleet(fleet):
    enclave = Enclave(torch.nn.Linear(4, 2), role="all")
    verifier = QuoteVerifier([d.public for d in fleet], enclave.measurement)
    quotes = [d.quote(enclave.measurement, verifier.challenge(), "bls12-381") for d in fleet]
    verifier.verify_fleet(aggregate(quotes))
    with pytest.raises(AttestationError, match="replayed"):
        verifier.verify_fleet(aggregate(quotes))
    fresh = [d.quote(enclave.measurement, verifier.challenge(), "bls12-381") for d in fleet]
    wrong = aggregate(fresh)
    swapped = type(wrong)(wrong.quotes, aggregate(fresh[:2]).signature)
    with pytest.raises(AttestationError, match="aggregate"):
        verifier.verify_fleet(swapped)
