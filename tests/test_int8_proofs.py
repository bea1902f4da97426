"""Int8 proofs: the LogUp range argument (completeness and soundness, hypothesis), the
verifier's convolution MLE against the computed layer, honest proofs in both modes,
every dishonest prover of the attack catalog rejected, fuzzed proofs rejected with
ProofRejected only, post-training quantisation of zoo models."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from vtrust.attacks.int8_cheats import CHEATS, cheating_prover
from vtrust.errors import CircuitError, InputError, ProofRejected
from vtrust.proofs import ext as X
from vtrust.proofs import logup
from vtrust.proofs.channel import FiatShamirChannel, InteractiveChannel, Send, prove_fiat_shamir
from vtrust.proofs.int8 import protocol as P
from vtrust.proofs.int8.mle import bits, linear_mle, padded_dims, tensor_mle
from vtrust.proofs.int8.network import Add, Conv, Dense, Flatten, Int8Network, MaxPool, Requant
from vtrust.proofs.int8.ptq import quantize_model
from vtrust.proofs.int8.shapes import random_network, residual_network
from vtrust.proofs.protocol import RandomChallenges
from vtrust.proofs.sumcheck import Transcript


def padded_mle(values, lookup_bits, table_bits):
    """The verifier's MLE of the lookups it holds (``table_bits``: unused, the table's
    own MLE is the range check's)."""
    table = np.ascontiguousarray(values, dtype=np.uint64)
    assert len(table) == 1 << lookup_bits
    return lambda s: X.mle_base(table, s)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), lookup_bits=st.integers(0, 7), table_bits=st.integers(0, 7))
def test_range_proofs_accept_every_in_range_vector(seed, lookup_bits, table_bits):
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 1 << table_bits, 1 << lookup_bits).astype(np.uint64)
    mle = padded_mle(d, lookup_bits, table_bits)
    channel = InteractiveChannel(logup.prove_range(d, table_bits), RandomChallenges(seed))
    logup.verify_range(channel, lookup_bits, table_bits, mle)
    messages = prove_fiat_shamir(logup.prove_range(d, table_bits), Transcript(b"t"))
    replay = FiatShamirChannel(messages, Transcript(b"t"))
    logup.verify_range(replay, lookup_bits, table_bits, mle)
    replay.finish()


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    lookup_bits=st.integers(0, 6),
    table_bits=st.integers(1, 6),
    offset=st.sampled_from([1, 2, 7, -1, -2, (1 << 40)]),
)
def test_range_proofs_reject_a_value_outside_the_table(seed, lookup_bits, table_bits, offset):
    """The prover proves an in-range vector while the verifier's lookups hold one value
    outside [0, 2^T) — just above, or negative (p − 1: the classic range-check attack)."""
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 1 << table_bits, 1 << lookup_bits).astype(np.uint64)
    true = d.copy()
    value = (1 << table_bits) - 1 + offset if offset > 0 else offset
    true[rng.integers(0, len(d))] = value % ((1 << 61) - 1)
    channel = InteractiveChannel(logup.prove_range(d, table_bits), RandomChallenges(seed))
    with pytest.raises(ProofRejected):
        logup.verify_range(
            channel, lookup_bits, table_bits, padded_mle(true, lookup_bits, table_bits)
        )


def test_range_proofs_reject_forged_multiplicities():
    d = np.arange(8, dtype=np.uint64) % 4
    messages = prove_fiat_shamir(logup.prove_range(d, 2), Transcript(b"t"))
    forged = [Send("multiplicities", [3, 1, 2, 2]), *messages[1:]]
    with pytest.raises(ProofRejected):
        logup.verify_range(FiatShamirChannel(forged, Transcript(b"t")), 3, 2, padded_mle(d, 3, 2))


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    batch=st.integers(1, 3),
    channels=st.integers(1, 3),
    outputs=st.integers(1, 5),
    size=st.integers(3, 9),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.integers(0, 2),
)
def test_convolution_mle_matches_the_computed_layer(
    seed, batch, channels, outputs, size, kernel, stride, padding
):
    """The verifier's factored evaluation equals the MLE of the accumulators the
    prover computes (times per-channel multipliers), at a random point."""
    rng = np.random.default_rng(seed)
    conv = Conv(rng.integers(-127, 128, (outputs, channels, kernel, kernel)),
                rng.integers(-999, 999, outputs), stride, padding)  # fmt: skip
    net = Int8Network((channels, size, size), (conv,))
    x = rng.integers(-128, 128, (batch, channels, size, size))
    acc = net.accumulate(0, x)
    m = rng.integers(1, 1 << 15, outputs)
    point = [tuple(int(v) for v in rng.integers(0, 2**61 - 1, 2))
             for _ in range(sum(bits(d) for d in padded_dims(acc.shape)))]  # fmt: skip
    expected = tensor_mle(acc * m.reshape(1, -1, 1, 1), point)
    assert linear_mle(conv, x, m, point, net.shapes[1]) == expected


def small_network(rng, relu=True):
    def rq(o):
        return Requant(rng.integers(1 << 13, 1 << 14, o), 20, relu)

    return Int8Network((2, 8, 8), (
        Conv(rng.integers(-127, 128, (4, 2, 3, 3)), rng.integers(-999, 999, 4), 1, 1), rq(4),
        MaxPool(2), Conv(rng.integers(-127, 128, (3, 4, 3, 3)), rng.integers(-999, 999, 3)),
        rq(1), Flatten(), Dense(rng.integers(-127, 128, (5, 12)), rng.integers(-999, 999, 5)),
        rq(5), Dense(rng.integers(-127, 128, (3, 5)), rng.integers(-999, 999, 3)),
    ))  # fmt: skip


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 5), relu=st.booleans())
def test_honest_int8_proofs_verify_in_both_modes(seed, batch, relu):
    rng = np.random.default_rng(seed)
    net = small_network(rng, relu)
    x = rng.integers(-128, 128, (batch, 2, 8, 8))
    truth = net.forward(x)
    verified = P.run_interactive(net, x, seed=seed)
    assert (verified.outputs == truth[-1]).all()
    messages = P.prove_noninteractive(net, x)
    again = P.verify_noninteractive(net, x, messages)
    assert (again.outputs == truth[-1]).all()
    assert all((again.activations[i] == truth[i + 1]).all() for i in again.activations)


@pytest.fixture(scope="module")
def lenet():
    net = random_network("lenet5", seed=3)
    x = np.random.default_rng(4).integers(0, 128, (2, 1, 28, 28))
    return net, x


@pytest.fixture(scope="module")
def residual():
    net = residual_network(seed=5)
    return net, np.random.default_rng(6).integers(0, 128, (3, 1, 8, 8))


@pytest.mark.parametrize("cheat", CHEATS)
@pytest.mark.parametrize("mode", ["interactive", "fiat-shamir"])
def test_every_dishonest_prover_is_rejected(lenet, residual, cheat, mode):
    """A ReLU output one higher, a rounding off by one, a max-pool answering the second
    largest, an output one higher, a residual add one higher — each proven as well as
    the cheat allows (on LeNet-5, and on a residual CNN for the add)."""
    net, x = residual if cheat == "add" else lenet
    prover = cheating_prover(net, x, cheat)
    with pytest.raises(ProofRejected):
        if mode == "interactive":
            P.verify(net, x, InteractiveChannel(prover, RandomChallenges()))
        else:
            P.verify_noninteractive(net, x, prove_fiat_shamir(prover, P.statement(net, x)))


def test_a_residual_network_proves_and_its_adds_are_the_verifiers(residual):
    net, x = residual
    truth = net.forward(x)
    verified = P.verify_noninteractive(net, x, P.prove_noninteractive(net, x))
    add = next(i for i, layer in enumerate(net.layers) if isinstance(layer, Add))
    assert (verified.activations[add] == truth[add + 1]).all()
    assert (P.run_interactive(net, x).outputs == truth[-1]).all()


def test_cheats_change_what_the_verifier_would_learn(lenet, residual):
    """The attacks are real: each dishonest prover's claimed computation differs from
    the honest one (so a rejection is the verifier's doing, not a no-op)."""
    for cheat in CHEATS:
        net, x = residual if cheat == "add" else lenet
        honest = P.prove_noninteractive(net, x)
        forged = prove_fiat_shamir(cheating_prover(net, x, cheat), P.statement(net, x))
        claimed = [(a, b) for a, b in zip(honest, forged, strict=True)
                   if a.kind in ("outputs", "quotients")]  # fmt: skip
        differs = [not np.array_equal(np.asarray(a.values), np.asarray(b.values))
                   for a, b in claimed]  # fmt: skip
        assert any(differs), cheat


def test_fuzzed_proofs_raise_proof_rejected_only(lenet):
    net, x = lenet
    messages = P.prove_noninteractive(net, x)
    rng = np.random.default_rng(0)
    for trial in range(60):
        forged = list(messages)
        k = int(rng.integers(len(forged)))
        values = list(np.asarray(forged[k].values).tolist())
        choice = trial % 5
        if choice == 0 and values:
            values[int(rng.integers(len(values)))] += int(rng.integers(1, 5))
        elif choice == 1:
            values = values[:-1]
        elif choice == 2:
            values = [*values, 0]
        elif choice == 3 and values:
            values[0] = "x"
        else:
            forged = forged[:k] + forged[k + 1 :]
        if choice < 4:
            forged[k] = Send(forged[k].kind, values)
        with pytest.raises(ProofRejected):
            P.verify_noninteractive(net, x, forged)
    with pytest.raises(ProofRejected):
        P.verify_noninteractive(net, x, [*messages, Send("round", [0] * 8)])
    with pytest.raises(ProofRejected):
        P.verify_noninteractive(net, x, "not a proof")  # type: ignore[arg-type]


def test_a_proof_is_bound_to_its_inputs(lenet):
    net, x = lenet
    messages = P.prove_noninteractive(net, x)
    other = x.copy()
    other[0, 0, 0, 0] ^= 1
    with pytest.raises(ProofRejected):
        P.verify_noninteractive(net, other, messages)


def test_soundness_is_stated_and_above_100_bits(lenet):
    net, _ = lenet
    stated = P.soundness(net, 16)
    assert stated["bits"] >= 100 and stated["total"] < 2.0**-100
    assert len(stated["range_proofs"]) == 4  # one per requantised layer


def test_the_network_refuses_what_it_cannot_express():
    rng = np.random.default_rng(0)
    conv = Conv(rng.integers(-127, 128, (2, 1, 3, 3)), np.zeros(2, dtype=np.int64))
    dense = Dense(rng.integers(-127, 128, (3, 18)), np.zeros(3, dtype=np.int64))
    with pytest.raises(CircuitError, match="layer 1: every linear"):  # no requantisation
        Int8Network((1, 5, 5), (conv, Flatten(), dense))
    with pytest.raises(CircuitError, match="weights"):
        Dense(np.full((2, 2), 200), np.zeros(2, dtype=np.int64))
    with pytest.raises(CircuitError, match="layer 3"):
        Int8Network((1, 5, 5), (conv, Requant(np.array([1]), 8), Dense(dense.weight, dense.bias)))
    with pytest.raises(CircuitError, match="layer 4: a residual add must follow"):
        Int8Network((1, 5, 5), (conv, Requant(np.array([1]), 8), Flatten(), Add(-1, (1, 1), 4),
                                dense))  # fmt: skip
    with pytest.raises(CircuitError, match="layer 3: cannot add shapes"):
        Int8Network((1, 5, 5), (conv, Requant(np.array([1]), 8), Add(-1, (1, 1), 4), Flatten(),
                                dense))  # fmt: skip
    net = Int8Network((1, 5, 5), (conv, Requant(np.array([1]), 8), Flatten(), dense))
    with pytest.raises(InputError):
        net.forward(np.zeros((1, 1, 5, 5)))  # floats, not int8 values
    with pytest.raises(InputError):
        net.forward(np.full((1, 1, 5, 5), 300))


def test_post_training_quantisation_keeps_the_zoo_models_accuracy(small_cnn, small_mlp, digits):
    for model in (small_cnn, small_mlp):
        with torch.no_grad():
            float_pred = model(torch.from_numpy(digits.test.x)).argmax(1).numpy()
        for per_channel in (False, True):
            quantized = quantize_model(model, digits.victim.x[:256], per_channel=per_channel)
            int_pred = quantized.predict(digits.test.x)
            agree = (int_pred == float_pred).mean()
            assert agree >= 0.97, (type(model).__name__, per_channel, agree)
        x = quantized.quantize_inputs(digits.test.x[:3])
        verified = P.run_interactive(quantized.network, x)
        assert (verified.outputs == quantized.network.predict(x)).all()


class ResidualCNN(nn.Module):
    """conv-ReLU, conv, + the first block's output, ReLU, max-pool, dense."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        a = torch.relu(self.conv1(x))
        b = torch.relu(self.bn(self.conv2(a)) + a)
        return self.fc(torch.flatten(nn.functional.max_pool2d(b, 2), 1))


def test_quantisation_of_a_residual_network_keeps_its_accuracy_and_proves(digits):
    from vtrust.models import TrainConfig, fit

    torch.manual_seed(0)
    model = ResidualCNN()
    fit(model, digits.victim, TrainConfig(epochs=10, lr=3e-3, seed=0))
    quantized = quantize_model(model, digits.victim.x[:256])
    kinds = [type(layer).__name__ for layer in quantized.network.layers]
    assert "Add" in kinds and "BatchNorm2d" not in kinds
    with torch.no_grad():
        float_pred = model.eval()(torch.from_numpy(digits.test.x)).argmax(1).numpy()
    assert (quantized.predict(digits.test.x) == float_pred).mean() >= 0.95
    x = quantized.quantize_inputs(digits.test.x[:4])
    verified = P.verify_noninteractive(
        quantized.network, x, P.prove_noninteractive(quantized.network, x)
    )
    assert (verified.outputs == quantized.network.predict(x)).all()


def test_quantisation_refuses_layers_it_cannot_express(digits):
    calibration = digits.victim.x[:8]

    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.a(x) * self.b(x), 1))

    with pytest.raises(CircuitError, match="Sigmoid"):
        sigmoid = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.Sigmoid(), nn.Linear(8, 10))
        quantize_model(sigmoid, calibration)
    with pytest.raises(CircuitError, match="not a chain"):
        quantize_model(Branches(), calibration)
    bn = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10)
    )
    bn[1].running_mean.uniform_(-0.5, 0.5)
    bn[1].running_var.uniform_(0.5, 2.0)
    quantized = quantize_model(bn, calibration)  # folded: no batch-norm layer left
    with torch.no_grad():
        float_pred = bn.eval()(torch.from_numpy(digits.test.x)).argmax(1).numpy()
    assert (quantized.predict(digits.test.x) == float_pred).mean() >= 0.95


def test_network_files_round_trip_with_every_layer_kind(residual, lenet, tmp_path):
    from vtrust.proofs.int8.files import load_network, save_network
    from vtrust.proofs.int8.ptq import QuantizedModel

    for net, _ in (residual, lenet):
        save_network(tmp_path / "n.int8", QuantizedModel(net, 1 / 127, np.ones(3)))
        again = load_network(tmp_path / "n.int8").network
        assert again.sha256() == net.sha256() and again.layers[-1].weight.dtype == np.int8


def test_a_proof_from_a_network_with_one_weight_changed_is_rejected(lenet):
    """The prover runs a network one weight off (a different model than the verifier's);
    interactively too, where no hash binds the network."""
    net, x = lenet
    layers = list(net.layers)
    index = net.linear_indices[1]
    weight = layers[index].weight.copy()
    weight.flat[0] = weight.flat[0] + 1 if weight.flat[0] < 127 else weight.flat[0] - 1
    layers[index] = Conv(weight, layers[index].bias, layers[index].stride, layers[index].padding)
    other = Int8Network(net.input_shape, tuple(layers))
    with pytest.raises(ProofRejected):
        P.verify_noninteractive(net, x, P.prove_noninteractive(other, x))
    with pytest.raises(ProofRejected):
        P.verify(net, x, InteractiveChannel(P.prover(other, x), RandomChallenges()))


def test_quantisation_keeps_the_batch_when_flattening_or_refuses(digits):
    calibration = digits.victim.x[:8]

    class Flat(nn.Module):
        def __init__(self, how):
            super().__init__()
            self.how, self.fc = how, nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.view(-1) if self.how == "view" else torch.flatten(x, self.how))

    assert quantize_model(Flat(1), calibration).network.n_outputs == 10
    for how in ("view", 0):
        with pytest.raises(CircuitError):
            quantize_model(Flat(how), calibration)


def test_the_quotient_bound_is_what_stops_the_wraparound_forgery(lenet, monkeypatch):
    """Without the verifier's bound on quotients the forged activation (127) and every
    output computed from it are accepted: the bound is load-bearing, not decoration."""
    net, x = lenet
    monkeypatch.setattr(P, "quotient_bound", lambda network, block: 1 << 60)
    forged = prove_fiat_shamir(cheating_prover(net, x, "wraparound"), P.statement(net, x))
    verified = P.verify_noninteractive(net, x, forged)
    assert not np.array_equal(verified.outputs, net.forward(x)[-1])
    monkeypatch.undo()
    with pytest.raises(ProofRejected, match="beyond"):
        P.verify_noninteractive(net, x, forged)


def test_an_interactive_prover_cannot_change_a_message_after_sending_it(lenet):
    """The prover runs between messages in one process. One that sends the first
    layer's quotients of a forged ReLU output (and every later message consistent with
    the forgery), then rewrites that very array to the honest quotients before the first
    layer's range proof — which it proves honestly — is still rejected."""
    from vtrust.attacks.int8_cheats import _relu_up

    net, x = lenet
    first = P.plan(net, len(x))[0].index

    def tamper(i, v):
        return _relu_up(net, i, v) if i == first else v

    forged_values = net.forward(x, tamper)
    witnesses = P.witness(net, forged_values)
    honest = P.witness(net, net.forward(x))[0]
    forged_q = witnesses[0].quotients.ravel().copy()
    witnesses[0] = honest  # range-proved honestly...

    def swapping():
        inner, reply, sent = P.prover(net, x, forged_values, witnesses), None, None
        while True:
            try:
                item = inner.send(reply)
            except StopIteration:
                return
            if isinstance(item, Send) and item.kind == "quotients" and sent is None:
                sent = forged_q.copy()  # ...but the forged quotients are what is sent
                reply = yield Send("quotients", sent)
                sent[:] = honest.quotients.ravel()  # and rewritten once the verifier has them
            else:
                reply = yield item

    with pytest.raises(ProofRejected):
        P.verify(net, x, InteractiveChannel(swapping(), RandomChallenges()))


@pytest.mark.parametrize("mode", ["fiat-shamir", "interactive"])
def test_the_catalogs_dishonest_provers_are_rejected(lenet, residual, mode):
    import dataclasses

    from vtrust.catalog import list_entries

    entries = [e for e in list_entries("attacks") if e.kind == "int8-dishonest-prover"]
    assert {e.params.cheat for e in entries} == set(CHEATS)
    for entry in entries:
        net, x = residual if entry.params.cheat == "add" else lenet
        attack = entry.build()
        attack.params = dataclasses.replace(attack.params, mode=mode)
        row = attack.attempt(net, x)
        assert row["accepted"] is False and row["reason"], entry.name


def test_cheats_that_need_a_layer_the_network_lacks_say_so(digits):
    """A single dense layer (softmax regression) has no requantisation: the cheats that
    need one are not applicable (InputError), and the output cheat is still rejected."""
    from vtrust.attacks.int8_cheats import attack_verifier
    from vtrust.models.zoo import build_model

    quantized = quantize_model(build_model("softmax", (1, 8, 8), 10, seed=0), digits.victim.x[:64])
    x = quantized.quantize_inputs(digits.test.x[:2])
    for cheat in ("relu", "rounding", "maxpool", "add", "wraparound"):
        with pytest.raises(InputError, match="no "):
            cheating_prover(quantized.network, x, cheat)
    rows = attack_verifier(quantized.network, x)
    assert {r["attack"] for r in rows if r["applicable"]} == {"int8-output"}
    assert not any(r["accepted"] for r in rows)
