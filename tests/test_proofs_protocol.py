"""Sum-check proofs for layered circuits: completeness (hypothesis), soundness against
every kind of single change, and malformed messages rejected with ProofRejected only."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust.errors import InputError, ProofRejected
from vtrust.proofs import ext as X
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
    squares_first=st.booleans(),
    protocol=st.sampled_from(PR.PROTOCOLS),
)
def test_honest_proofs_verify_in_both_modes(seed, batch, dims, squares_first, protocol):
    """Interactive and Fiat–Shamir, fused and layered, circuits starting with a Linear
    or a Square layer."""
    rng = np.random.default_rng(seed)
    circuit = random_circuit(rng, batch, dims)
    if squares_first:
        circuit = Circuit((Square(dims[0]), *circuit.layers), batch, dims[0], dims[-1])
    x = random_inputs(rng, circuit)
    truth = circuit.forward(x)[-1]
    assert (PR.run_interactive(circuit, x, seed=seed, protocol=protocol) == truth).all()
    outputs, messages = PR.prove_noninteractive(circuit, x, protocol=protocol)
    prepared = PR.PreparedVerifier.prepare(circuit)
    verified = PR.verify_noninteractive(prepared, x, outputs, messages, protocol=protocol)
    assert (verified == truth).all()


@pytest.fixture(scope="module", params=PR.PROTOCOLS)
def setting(request):
    rng = np.random.default_rng(7)
    circuit = random_circuit(rng, 4, [8, 16, 8, 4])
    x = random_inputs(rng, circuit)
    outputs, messages = PR.prove_noninteractive(circuit, x, protocol=request.param)
    return circuit, x, outputs, messages, request.param


def rejects(circuit, x, outputs, messages, protocol):
    prepared = PR.PreparedVerifier.prepare(circuit)
    with pytest.raises(ProofRejected):
        PR.verify_noninteractive(prepared, x, outputs, messages, protocol=protocol)


def test_the_fused_protocol_is_shorter_and_each_protocol_rejects_the_others_proofs():
    rng = np.random.default_rng(3)
    circuit = random_circuit(rng, 4, [8, 16, 8, 4])
    x = random_inputs(rng, circuit)
    kinds = {p: [stage.kind for stage in PR.stages(circuit, p)] for p in PR.PROTOCOLS}
    assert kinds == {"fused": ["fused", "fused", "input"],
                     "layered": ["linear", "square", "linear", "square", "linear"]}  # fmt: skip
    proofs = {p: PR.prove_noninteractive(circuit, x, protocol=p) for p in PR.PROTOCOLS}
    assert len(proofs["fused"][1]) < len(proofs["layered"][1])
    fused = PR.soundness(circuit, "fused")["total"]
    assert 0 < fused < PR.soundness(circuit, "layered")["total"]
    for made, checked in (("fused", "layered"), ("layered", "fused")):
        rejects(circuit, x, *proofs[made], checked)
    with pytest.raises(InputError, match="protocol"):
        PR.stages(circuit, "magic")


def test_every_single_output_change_is_rejected(setting):
    circuit, x, outputs, messages, protocol = setting
    for i in range(outputs.size):
        forged = outputs.copy().ravel()
        forged[i] = F.add(forged[i : i + 1], np.uint64(1))[0]
        rejects(circuit, x, forged.reshape(outputs.shape), messages, protocol)


def test_every_single_message_change_is_rejected(setting):
    circuit, x, outputs, messages, protocol = setting
    for m in range(len(messages)):
        for j in range(len(messages[m])):
            forged = [list(v) for v in messages]
            forged[m][j] = (forged[m][j] + 1) % F.P
            rejects(circuit, x, outputs, forged, protocol)


def test_changed_weights_bias_or_input_are_rejected(setting):
    circuit, x, outputs, messages, protocol = setting
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
            other = dataclasses.replace(circuit, layers=tuple(layers))
            rejects(other, x, outputs, messages, protocol)
    x2 = x.copy()
    x2[0, 0] = F.add(x2[:1, 0], np.uint64(1))[0]
    rejects(circuit, x2, outputs, messages, protocol)


def test_a_cheating_prover_with_a_wrong_forward_pass_is_caught_interactively(setting):
    circuit, x, _, _, protocol = setting

    class Cheat(PR.Prover):
        def run(self, x):  # claims outputs of a slightly different input
            x = x.copy()
            x[0, 0] = F.add(x[:1, 0], np.uint64(1))[0]
            yield from super().run(x)

    prepared = PR.PreparedVerifier.prepare(circuit)
    check = PR.verifier(prepared, x, PR.RandomChallenges(1), protocol)
    next(check)
    prover = Cheat(circuit, protocol).run(x)
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
    circuit, x, outputs, messages, protocol = setting
    rejects(circuit, x, outputs, mutate([list(v) for v in messages]), protocol)


def test_soundness_bound_is_stated_and_small(setting):
    circuit, protocol = setting[0], setting[4]
    bound = PR.soundness(circuit, protocol)
    assert 0 < bound["total"] < 2**-100  # challenges in F_{p^2}
    assert len(bound["stages"]) == len(PR.stages(circuit, protocol))
    ni = PR.noninteractive_soundness(circuit, protocol)
    assert ni["bits"] >= 100 and ni["at_2^40"] < 2**-70


def test_prover_and_verifier_in_different_processes(setting):
    import multiprocessing

    from vtrust.proofs.remote import serve_prover, verify_remote

    circuit, x, _, _, protocol = setting
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=serve_prover, args=(there, circuit, x, protocol))
    child.start()
    try:
        outputs = verify_remote(here, circuit, x, seed=3, protocol=protocol)
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


def _ext_values(rng, n):
    return [(int(a), int(b)) for a, b in rng.integers(0, F.P, (n, 2), dtype=np.uint64)]


def _as_list(pair):
    return list(zip(pair[0].tolist(), pair[1].tolist(), strict=True))


def _fold_top(table, r):
    """Fix a table's highest variable to r (a list of F_{p^2} pairs)."""
    half = len(table) // 2
    return [
        X.add(a, X.mul(r, X.sub(b, a))) for a, b in zip(table[:half], table[half:], strict=True)
    ]


def _plain_square_rounds(z, weights, rs):
    """Reference: each round's g(t) = Σ_rest A(rest, t, r…) z(rest, t, r…)², t = 0..3, from
    full tables (A = ``weights``) folded one variable at a time, the highest first, in
    plain F_{p^2} arithmetic."""
    e_table, z_table, rounds = list(weights), [X.lift(v) for v in z.tolist()], []
    for r in rs:
        row = []
        for t in range(4):
            total = X.ZERO
            pairs = zip(_fold_top(e_table, X.lift(t)), _fold_top(z_table, X.lift(t)), strict=True)
            for e, v in pairs:
                total = X.add(total, X.mul(e, X.mul(v, v)))
            row.append(total)
        rounds.append(row)
        e_table, z_table = _fold_top(e_table, r), _fold_top(z_table, r)
    return rounds, z_table[0]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    m=st.integers(1, 7),
    low_variables=st.sampled_from([0, 1, 2, 10]),
    zero_at=st.integers(-1, 6),
)
def test_square_prover_matches_the_plain_sum_check(seed, m, low_variables, zero_at):
    """The factored prover (h(1) from the running claim, h(2) from a cross term, eq split
    into a low and a high table, fused folding, F_{p^2} challenges) sends exactly the
    plain form's messages, for every split of the variables, also when a coordinate of
    the point or a challenge is 0 (then h(1) cannot be derived and is summed)."""
    from vtrust.proofs import sumcheck as S

    rng = np.random.default_rng(seed)
    z = rng.integers(0, F.P, 1 << m, dtype=np.uint64)
    q, rs = _ext_values(rng, m), _ext_values(rng, m)
    if 0 <= zero_at < m:
        q[zero_at] = X.ZERO
        rs[(zero_at + 1) % m] = X.ZERO
        if zero_at + 1 < m:
            q[zero_at + 1] = X.ZERO  # two zero coordinates in a row
    eq = X.eq_table(q)
    claim = X.inner(eq, (F.mul(z, z), np.zeros_like(z)))
    expected, final = _plain_square_rounds(z, _as_list(eq), rs)
    prover = S.SquareProver.for_eq(z, q, claim, low_variables=low_variables)
    for r, want in zip(rs, expected, strict=True):
        got = prover.message()
        assert got == want and X.add(got[0], got[1]) == claim
        claim = X.interpolate(got, r)
        prover.bind(r)
    assert prover.final == final == X.mle_base(z, rs[::-1])  # z at the bound point
    assert claim == X.mul(X.mul(X.eq_value(q, rs[::-1]), final), final)  # the verifier's check


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), low=st.integers(0, 4), high=st.integers(0, 4),
       zero_at=st.integers(-1, 3))  # fmt: skip
def test_square_prover_with_any_low_weights_matches_the_plain_sum_check(seed, low, high, zero_at):
    """The fused stage's claim Σ eq(r_b, hi) w(lo) z(lo, hi)² for arbitrary weights w."""
    from vtrust.proofs import sumcheck as S

    rng = np.random.default_rng(seed)
    m = low + high
    z = rng.integers(0, F.P, 1 << m, dtype=np.uint64)
    w = _ext_values(rng, 1 << low)
    qh = _ext_values(rng, high)
    if 0 <= zero_at < high:
        qh[zero_at] = X.ZERO
    rs = _ext_values(rng, m)
    weights = [X.mul(a, b) for a in _as_list(X.eq_table(qh)) for b in w]
    claim = X.ZERO
    for a, v in zip(weights, z.tolist(), strict=True):
        claim = X.add(claim, X.mul(a, X.lift(v * v)))
    expected, final = _plain_square_rounds(z, weights, rs)
    w_pair = (np.array([v[0] for v in w], np.uint64), np.array([v[1] for v in w], np.uint64))
    prover = S.SquareProver(z, qh, w_pair, claim)
    assert prover.rounds == m
    for r, want in zip(rs, expected, strict=True):
        got = prover.message()
        assert got == want and X.add(got[0], got[1]) == claim
        claim = X.interpolate(got, r)
        prover.bind(r)
    bound = rs[::-1]
    assert prover.final == final == X.mle_base(z, bound)
    w_at = X.inner(w_pair, X.eq_table(bound[:low])) if low else w[0]
    assert claim == X.mul(X.mul(X.mul(X.eq_value(qh, bound[low:]), w_at), final), final)


@settings(max_examples=60, deadline=None)
@given(a=st.tuples(st.integers(0, F.P - 1), st.integers(0, F.P - 1)),
       b=st.tuples(st.integers(0, F.P - 1), st.integers(0, F.P - 1)),
       c=st.tuples(st.integers(0, F.P - 1), st.integers(0, F.P - 1)))  # fmt: skip
def test_the_extension_field_obeys_the_field_laws(a, b, c):
    """F_{p^2} = F_p[i]/(i² + 1): a field (i² = −1, p ≡ 3 mod 4 so −1 is no square)."""
    assert X.mul(a, X.add(b, c)) == X.add(X.mul(a, b), X.mul(a, c))
    assert X.mul(X.mul(a, b), c) == X.mul(a, X.mul(b, c)) and X.mul(a, b) == X.mul(b, a)
    assert X.mul((0, 1), (0, 1)) == (F.P - 1, 0)
    if a != X.ZERO:
        assert X.mul(a, X.inverse(a)) == X.ONE
    r = X.eq_table([a, b])
    assert X.inner(r, (np.ones(4, np.uint64), np.zeros(4, np.uint64))) == X.ONE  # Σ eq = 1
