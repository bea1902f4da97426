"""Sum-check proofs for layered circuits: completeness (hypothesis), soundness against
every kind of single change, and malformed messages rejected with ProofRejected only."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust.errors import ProofRejected
from vtrust.proofs import field as F
from vtrust.proofs import protocol as PR
from vtrust.proofs.circuit import Circuit, Linear, Square


def random_circuit(rng, batch, dims, weight=7):
    layers = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(
            Linear(rng.integers(-weight, weight + 1, (b, a)), F.elements(rng.integers(-99, 99, b)))
        )
        if i < len(dims) - 2:
            layers.append(Square(b))
    return Circuit(tuple(layers), batch, dims[0], dims[-1])


def random_inputs(rng, circuit):
    return circuit.pad_inputs(F.elements(rng.integers(0, 16, (circuit.batch, circuit.n_inputs))))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    batch=st.sampled_from([1, 2, 8]),
    dims=st.lists(st.sampled_from([1, 2, 4, 8, 16]), min_size=2, max_size=4),
)
def test_honest_proofs_verify_in_both_modes(seed, batch, dims):
    rng = np.random.default_rng(seed)
    circuit = random_circuit(rng, batch, dims)
    x = random_inputs(rng, circuit)
    truth = circuit.forward(x)[-1]
    assert (PR.run_interactive(circuit, x, seed=seed) == truth).all()
    outputs, messages = PR.prove_noninteractive(circuit, x)
    prepared = PR.PreparedVerifier.prepare(circuit)
    assert (PR.verify_noninteractive(prepared, x, outputs, messages) == truth).all()


@pytest.fixture(scope="module")
def setting():
    rng = np.random.default_rng(7)
    circuit = random_circuit(rng, 4, [8, 16, 8, 4])
    x = random_inputs(rng, circuit)
    outputs, messages = PR.prove_noninteractive(circuit, x)
    return circuit, x, outputs, messages


def rejects(circuit, x, outputs, messages):
    with pytest.raises(ProofRejected):
        PR.verify_noninteractive(PR.PreparedVerifier.prepare(circuit), x, outputs, messages)


def test_every_single_output_change_is_rejected(setting):
    circuit, x, outputs, messages = setting
    for i in range(outputs.size):
        forged = outputs.copy().ravel()
        forged[i] = F.add(forged[i : i + 1], np.uint64(1))[0]
        rejects(circuit, x, forged.reshape(outputs.shape), messages)


def test_every_single_message_change_is_rejected(setting):
    circuit, x, outputs, messages = setting
    for m in range(len(messages)):
        for j in range(len(messages[m])):
            forged = [list(v) for v in messages]
            forged[m][j] = (forged[m][j] + 1) % F.P
            rejects(circuit, x, outputs, forged)


def test_changed_weights_bias_or_input_are_rejected(setting):
    circuit, x, outputs, messages = setting
    for index, layer in enumerate(circuit.layers):
        if not isinstance(layer, Linear):
            continue
        w = layer.weight.copy()
        w[0, 0] += 1
        b = layer.bias.copy()
        b[0] = F.add(b[:1], np.uint64(1))[0]
        for changed in (dataclasses.replace(layer, weight=w), dataclasses.replace(layer, bias=b)):
            layers = list(circuit.layers)
            layers[index] = changed
            rejects(dataclasses.replace(circuit, layers=tuple(layers)), x, outputs, messages)
    x2 = x.copy()
    x2[0, 0] = F.add(x2[:1, 0], np.uint64(1))[0]
    rejects(circuit, x2, outputs, messages)


def test_a_cheating_prover_with_a_wrong_forward_pass_is_caught_interactively(setting):
    circuit, x, _, _ = setting

    class Cheat(PR.Prover):
        def run(self, x):  # claims outputs of a slightly different input
            x = x.copy()
            x[0, 0] = F.add(x[:1, 0], np.uint64(1))[0]
            yield from super().run(x)

    prepared = PR.PreparedVerifier.prepare(circuit)
    check = PR.verifier(prepared, x, PR.RandomChallenges(1))
    next(check)
    prover = Cheat(circuit).run(x)
    message = next(prover)
    with pytest.raises(ProofRejected, match="input"):
        while True:
            message = prover.send(check.send(message))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m[:-1],
        lambda m: [*m, [1]],
        lambda m: [["1", "2", "3"], *m[1:]],
        lambda m: [[1.5, 2, 3], *m[1:]],
        lambda m: [[F.P, 0, 0], *m[1:]],
        lambda m: [[-1, 0, 0], *m[1:]],
        lambda m: [list(range(10**5)), *m[1:]],
        lambda m: [None, *m[1:]],
        lambda m: "not a list",
        lambda m: [[True, 0, 0], *m[1:]],
    ],
)
def test_malformed_messages_raise_proof_rejected_only(setting, mutate):
    circuit, x, outputs, messages = setting
    rejects(circuit, x, outputs, mutate([list(v) for v in messages]))


def test_soundness_bound_is_stated_and_small(setting):
    circuit = setting[0]
    bound = PR.soundness(circuit)
    assert 0 < bound["total"] < 2**-40 and len(bound["layers"]) == len(circuit.layers)


def test_prover_and_verifier_in_different_processes(setting):
    import multiprocessing

    from vtrust.proofs.remote import serve_prover, verify_remote

    circuit, x, _, _ = setting
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=serve_prover, args=(there, circuit, x))
    child.start()
    try:
        outputs = verify_remote(here, circuit, x, seed=3)
    finally:
        child.join(timeout=60)
    assert child.exitcode == 0
    assert (outputs == circuit.forward(x)[-1]).all()


def test_circuits_whose_soundness_bound_exceeds_2_to_the_minus_40_are_refused(setting, monkeypatch):
    from vtrust.errors import InputError

    circuit = setting[0]
    bound = PR.soundness(circuit)["total"]
    monkeypatch.setattr(PR, "MAX_SOUNDNESS_ERROR", bound / 2)
    with pytest.raises(InputError, match="soundness error"):
        PR.PreparedVerifier.prepare(circuit)


def _plain_square_rounds(z, q, rs):
    """Reference: each round's g(t) = Σ_rest eq(q, (r…, t, rest)) z(r…, t, rest)², t = 0..3,
    from full tables folded one variable at a time."""
    e_table, z_table, rounds = F.eq_table(q), z, []
    for r in rs:
        rounds.append([
            int(F.total(F.mul(F.fold(e_table, t), F.mul(F.fold(z_table, t), F.fold(z_table, t)))))
            for t in range(4)
        ])  # fmt: skip
        e_table, z_table = F.fold(e_table, r), F.fold(z_table, r)
    return rounds, int(z_table[0])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    m=st.integers(1, 6),
    known_squares=st.booleans(),
    zero_at=st.integers(-1, 5),
)
def test_square_prover_matches_the_plain_sum_check(seed, m, known_squares, zero_at):
    """The factored prover (h(1) from the running claim, fused folding, optional known
    squares) sends exactly the plain form's messages, also when a coordinate of the point
    or a challenge is 0 (then h(1) cannot be derived and is summed)."""
    from vtrust.proofs import sumcheck as S

    rng = np.random.default_rng(seed)
    z = rng.integers(0, F.P, 1 << m, dtype=np.uint64)
    q = [int(v) for v in rng.integers(0, F.P, m, dtype=np.uint64)]
    rs = [int(v) for v in rng.integers(0, F.P, m, dtype=np.uint64)]
    if 0 <= zero_at < m:
        q[zero_at] = 0
        rs[(zero_at + 1) % m] = 0
    claim = int(F.inner(F.eq_table(q), F.mul(z, z)))
    expected, final = _plain_square_rounds(z, q, rs)
    prover = S.SquareProver(z, q, claim, squares=F.mul(z, z) if known_squares else None)
    for r, want in zip(rs, expected, strict=True):
        got = prover.message()
        assert got == want and (got[0] + got[1]) % F.P == claim
        claim = S.interpolate(got, r)
        prover.bind(r)
    assert prover.final == final  # z at the bound point
    assert claim == S.eq_value(q, rs) * final * final % F.P  # what the verifier checks
