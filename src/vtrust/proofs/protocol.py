"""SafetyNets-style interactive proof that a batch of outputs came from a circuit.

The prover evaluates every layer, then proves from the output back to the input,
GKR-style. The verifier starts from the MLE of the claimed outputs at a random point;
each stage turns a claim "MLE of this layer's output at point q equals v" into a claim
about the MLE of the stage's input:

* :class:`~vtrust.proofs.circuit.Square`: ``Ỹ(q) = Σ_x eq(q, x) Z̃(x)²`` by a degree-3
  sum-check over all of the layer's variables, highest first; the prover's final
  message is ``Z̃(s)``.
* :class:`~vtrust.proofs.circuit.Linear`: subtract the bias MLE, then
  ``P̃(r_o, r_b) = Σ_k X̃(r_b, k) W̃(r_o, k)`` by a degree-2 sum-check over the input
  width (Thaler's protocol for matrix products); the prover's final message is
  ``X̃(r_b, s)``, the verifier evaluates ``W̃(r_o, s)`` itself (it holds the weights).
* ``fused`` (the default protocol): a Linear layer whose input is a Square layer's
  output, X = Z∘Z, is proven with that square in one degree-3 sum-check over batch ×
  width, ``P̃(r_o, r_b) − bias̃(r_o) = Σ_{b,k} eq(r_b, b) W̃(r_o, k) Z(b, k)²``: the
  matrix-product sum-check with X̃ expanded. It saves the prover the product
  eq(r_b)ᵀ·X over the whole layer and the width rounds; the final message is ``Z̃(s)``.
  The fused protocol also leaves a Linear input layer to the verifier, who knows x
  and W: it checks ``Σ_k x̃(r_b, k) W̃(r_o, k)`` itself (the same order of work as
  the x̃ and W̃ evaluations it does anyway) and the prover sends nothing for it.
  ``layered`` proves every layer on its own, as listed above.

At the input the verifier evaluates the MLE of the input it knows. The circuit, inputs
and outputs are in F_p; every challenge is drawn from F_{p^2} (:mod:`vtrust.proofs.ext`),
so the claims, round values and final messages are too (two integers each, real part
first) — the price of ≈ 120-bit soundness against a prover who grinds Fiat–Shamir
challenges (:func:`noninteractive_soundness`). Both parties are
generators exchanging plain integer lists, so they can run in different processes;
:func:`run_interactive` connects them in one. In Fiat–Shamir mode both derive every
challenge from a :class:`~vtrust.proofs.sumcheck.Transcript` that absorbs the statement
(circuit hash, challenge field, protocol, count, inputs, outputs) first and then every
prover message.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtrust.errors import InputError, ProofRejected
from vtrust.proofs import ext as X
from vtrust.proofs import field as F
from vtrust.proofs import sumcheck as S
from vtrust.proofs.circuit import Circuit, Linear

MAX_SOUNDNESS_ERROR = 2.0**-40

Message = dict[str, Any]


def _log2(n: int) -> int:
    return int(n).bit_length() - 1


PROTOCOLS = ("fused", "layered")


@dataclass(frozen=True)
class Stage:
    """One step of the proof: ``kind`` is "linear", "square", "fused" (the Linear layer
    ``index`` with the Square layer ``index − 1`` below it) — each a sum-check of
    ``rounds`` rounds and a final message — or "input": a Linear input layer whose
    claim the verifier evaluates itself (no messages)."""

    kind: str
    index: int
    rounds: int
    degree: int

    @property
    def messages(self) -> int:
        return 0 if self.kind == "input" else self.rounds + 1


def stages(circuit: Circuit, protocol: str = "fused") -> list[Stage]:
    """The proof's sum-checks from the output down to the input."""
    if protocol not in PROTOCOLS:
        raise InputError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    layers, out = circuit.layers, []
    index = len(layers) - 1
    while index >= 0:
        layer = layers[index]
        if not isinstance(layer, Linear):
            out.append(Stage("square", index, _log2(circuit.batch * layer.size), 3))
        elif protocol == "fused" and index > 0 and not isinstance(layers[index - 1], Linear):
            out.append(Stage("fused", index, _log2(circuit.batch * layer.n_in), 3))
            index -= 1
        elif protocol == "fused" and index == 0:
            out.append(Stage("input", 0, 0, 0))
        else:
            out.append(Stage("linear", index, _log2(layer.n_in), 2))
        index -= 1
    return out


#: Challenges are drawn from F_{p^2}: the size every soundness bound divides by.
CHALLENGE_FIELD_SIZE = float(F.P) ** 2


def soundness(circuit: Circuit, protocol: str = "fused") -> dict[str, Any]:
    """Interactive soundness error bounds: the output claim (Schwartz–Zippel) and every
    stage's sum-check (degree × rounds / p²; an "input" stage is an exact check: 0); the
    total is their sum (union bound)."""
    q = CHALLENGE_FIELD_SIZE
    per_stage = [stage.degree * stage.rounds / q for stage in stages(circuit, protocol)]
    output = _log2(circuit.batch * circuit.output_width) / q
    total = output + sum(per_stage)
    return {"output": output, "stages": per_stage, "total": total}


def noninteractive_soundness(circuit: Circuit, protocol: str = "fused") -> dict[str, Any]:
    """The Fiat–Shamir bound. A non-interactive prover can grind: rehash its message until
    one round's challenge lands on a root of the difference between its polynomial and the
    honest one, each hash succeeding with the round-by-round error ``degree/|F|`` (the
    output claim: ``variables/|F|``, Schwartz–Zippel for the outputs' MLE). Against a
    prover making ``2^t`` hashes the soundness error is at most ``2^t`` times the largest
    round error (Canetti et al., STOC 2019; Chiesa et al. 2019 for sum-check): ``bits`` =
    −log2(largest round error) is the security level, ``at_2^40`` the error after 2^40
    hashes. With challenges in F_p (|F| = p ≈ 2^61) that was ≈ 59 bits; in F_{p^2} it is
    ≈ 117–120 bits."""
    degrees = [stage.degree for stage in stages(circuit, protocol) if stage.rounds]
    variables = _log2(circuit.batch * circuit.output_width)
    round_error = max([*degrees, variables, 1]) / CHALLENGE_FIELD_SIZE
    return {
        "round_error": round_error,
        "bits": -math.log2(round_error),
        "at_2^40": min(1.0, round_error * 2.0**40),
    }


def check_soundness(circuit: Circuit) -> float:
    """The larger bound of the two protocols; InputError if it exceeds 2^-40."""
    bound = max(soundness(circuit, protocol)["total"] for protocol in PROTOCOLS)
    if bound > MAX_SOUNDNESS_ERROR:
        raise InputError(f"soundness error {bound:.3g} exceeds 2^-40 for this circuit")
    return bound


def statement(
    circuit: Circuit,
    x: np.ndarray,
    outputs: np.ndarray,
    protocol: str = "fused",
    count: int | None = None,
) -> S.Transcript:
    """A transcript that has absorbed the statement: circuit, protocol, the number of
    real inputs (``count``, default the batch), inputs, outputs."""
    t = S.Transcript(bytes.fromhex(circuit.sha256()))  # cached per circuit object
    t.absorb("challenge-field", b"F_p^2: i^2 = -1")
    t.absorb("protocol", protocol.encode())
    t.absorb("count", int(circuit.batch if count is None else count).to_bytes(8, "little"))
    t.absorb("inputs", F.compact_bytes(x))
    t.absorb("outputs", F.compact_bytes(outputs))
    return t


class Prover:
    """Holds the circuit; :meth:`run` is the prover's side of the conversation."""

    def __init__(self, circuit: Circuit, protocol: str = "fused") -> None:
        self.circuit = circuit
        self.stages = stages(circuit, protocol)

    def run(
        self, x: np.ndarray, values: list[np.ndarray] | None = None
    ) -> Generator[Message, Any, None]:
        """Yields messages; each ``send`` delivers the verifier's reply (a point, a
        challenge, or ``None`` after a stage's final message). ``values`` are the layer
        values of ``circuit.forward(x)`` when the caller already has them (the proof
        then costs only the extra prover work)."""
        circuit = self.circuit
        values = circuit.forward(x) if values is None else values
        point = yield {"kind": "outputs", "values": values[-1]}
        if not any(stage.messages for stage in self.stages):
            return  # the verifier checks the outputs against the input itself
        point = [_ext(v) for v in point]
        claim = X.mle_base(values[-1].ravel(), point)  # what the verifier holds now
        for stage in self.stages:
            layer = circuit.layers[stage.index]
            if stage.kind == "input":  # the verifier evaluates this claim itself
                return
            if stage.kind == "linear":
                r_o, r_b = _split(point, layer)
                f = X.vecmat(X.eq_table(r_b), values[stage.index])
                g = X.vecmat_small(X.eq_table(r_o), circuit.prepared_weights[stage.index])
                rs = []
                for _ in range(stage.rounds):
                    r = _ext((yield {"kind": "round", "values": X.flat(X.product_round(f, g))}))
                    f, g = X.fold(f, r), X.fold(g, r)
                    rs.append(r)
                claim = (int(f[0][0]), int(f[1][0]))
                yield {"kind": "final", "values": X.flat([claim])}
                point = rs + list(r_b)
                continue
            if stage.kind == "fused":
                r_o, r_b = _split(point, layer)
                weights = X.vecmat_small(X.eq_table(r_o), circuit.prepared_weights[stage.index])
                claim = X.sub(claim, X.mle_base(layer.bias, r_o))
                square = S.SquareProver(values[stage.index - 1], r_b, weights, claim)
            else:
                square = S.SquareProver.for_eq(values[stage.index], point, claim)
            rs = []
            for _ in range(stage.rounds):
                r = _ext((yield {"kind": "round", "values": X.flat(square.message())}))
                square.bind(r)
                rs.append(r)
            claim = square.final
            yield {"kind": "final", "values": X.flat([claim])}
            point = rs[::-1]  # bound from the highest variable down


def _ext(value: Any) -> X.Ext:
    """A challenge as the prover receives it (a pair; a JSON list across processes)."""
    re, im = value
    return (int(re) % F.P, int(im) % F.P)


def _split(point: list[X.Ext], layer: Linear) -> tuple[list[X.Ext], list[X.Ext]]:
    """A Linear layer's output point as (r_o, r_b): output-column and batch coordinates."""
    cols = _log2(layer.n_out)
    return list(point[:cols]), list(point[cols:])


class RandomChallenges:
    """Interactive mode: challenges in F_{p^2} from ``secrets`` (or, for tests, a seeded
    generator — predictable to whoever knows the seed)."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = None if seed is None else np.random.default_rng(seed)

    def absorb(self, label: str, values) -> None:
        """The interactive verifier's challenges do not depend on the messages."""

    def _draw(self) -> int:
        if self.rng is None:
            return secrets.randbelow(F.P)
        return int(self.rng.integers(0, F.P, dtype=np.uint64))

    def draw_ext(self) -> X.Ext:
        return (self._draw(), self._draw())


@dataclass
class PreparedVerifier:
    """What the verifier computes from the circuit before any proof (timed separately):
    the weights as float64 matrices for its MLE evaluations, the biases as tables."""

    circuit: Circuit
    weights: list[F.SmallMatrix | None]
    digest: str
    interactive_error: float = 0.0
    soundness_bits: float = 0.0

    @classmethod
    def prepare(cls, circuit: Circuit) -> PreparedVerifier:
        """Refuses (InputError) a circuit whose interactive error exceeds 2^-40; states
        the interactive error and the non-interactive security level in bits."""
        interactive = check_soundness(circuit)
        bits = min(noninteractive_soundness(circuit, p)["bits"] for p in PROTOCOLS)
        return cls(circuit, circuit.prepared_weights, circuit.sha256(), interactive, bits)


def _outputs(message: Any, count: int) -> np.ndarray:
    """The outputs message as a checked uint64 vector: a uint64 array (in-process) is
    range-checked at once, anything else goes through :func:`_values`."""
    values = message.get("values") if isinstance(message, dict) else None
    if isinstance(values, np.ndarray) and message.get("kind") == "outputs":
        if values.dtype != np.uint64 or values.size != count:
            raise ProofRejected(f"'outputs' message must hold {count} field elements")
        if count and int(values.max()) >= F.P:
            raise ProofRejected("'outputs' message holds a value out of range")
        return np.ascontiguousarray(values.ravel())
    return np.array(_values(message, "outputs", count), dtype=np.uint64)


def _values(message: Any, kind: str, count: int) -> list[int]:
    """A message's integer list after every check; ProofRejected otherwise."""
    if not isinstance(message, dict) or message.get("kind") != kind:
        raise ProofRejected(f"expected a {kind!r} message")
    values = message.get("values")
    if isinstance(values, np.ndarray):
        values = values.ravel().tolist()
    if not isinstance(values, list) or len(values) != count:
        raise ProofRejected(f"{kind!r} message must hold {count} values")
    if not all(type(v) is int for v in values):
        raise ProofRejected(f"{kind!r} message holds a value that is not an integer")
    if count > 8:
        try:
            arr = np.array(values, dtype=np.int64)
        except OverflowError:
            raise ProofRejected(f"{kind!r} message holds a value out of range") from None
        if arr.min() < 0 or arr.max() >= F.P:
            raise ProofRejected(f"{kind!r} message holds a value out of range")
    elif not all(0 <= v < F.P for v in values):
        raise ProofRejected(f"{kind!r} message holds a value out of range")
    return values


def verifier(
    prepared: PreparedVerifier, x: np.ndarray, challenges, protocol: str = "fused"
) -> Generator[Any, Message, np.ndarray]:
    """The verifier's side: receives messages, replies with challenges, returns the
    verified outputs (padded) or raises :class:`ProofRejected`."""
    circuit = prepared.circuit
    plan = stages(circuit, protocol)
    message = yield None
    n_out = circuit.batch * circuit.output_width
    flat = _outputs(message, n_out)
    outputs = flat.reshape(circuit.batch, circuit.output_width)
    # Fiat–Shamir: the statement absorbed the outputs before this transcript reached us
    point = [challenges.draw_ext() for _ in range(_log2(n_out))]
    claim = X.mle_base(flat, point)
    if any(stage.messages for stage in plan):
        message = yield point
    for number, stage in enumerate(plan, start=1):
        layer = circuit.layers[stage.index]
        where = f"stage {number} ({stage.kind}, layer {stage.index + 1})"
        if stage.kind != "square":
            r_o, r_b = _split(point, layer)
            claim = X.sub(claim, X.mle_base(layer.bias, r_o))
        if stage.kind == "input":  # Σ_k x̃(r_b, k) W̃(r_o, k), from x and W directly
            x_row = X.vecmat(X.eq_table(r_b), np.ascontiguousarray(x, dtype=np.uint64))
            w_row = X.vecmat_small(X.eq_table(r_o), prepared.weights[stage.index])
            if X.inner(x_row, w_row) != claim:
                raise ProofRejected("the claim about the first layer does not match the input")
            return outputs
        rs = []
        for i in range(stage.rounds):
            values = _values(message, "round", 2 * (stage.degree + 1))
            g = X.unflat(values)
            if X.add(g[0], g[1]) != claim:
                raise ProofRejected(f"{where}, round {i + 1}: g(0) + g(1) ≠ claim")
            challenges.absorb("round", values)
            r = challenges.draw_ext()
            claim = X.interpolate(g, r)
            rs.append(r)
            message = yield r
        final_values = _values(message, "final", 2)
        (final,) = X.unflat(final_values)
        challenges.absorb("final", final_values)
        if stage.kind == "linear":
            w_row = X.vecmat_small(X.eq_table(r_o), prepared.weights[stage.index])
            expected = X.mul(final, X.inner(w_row, X.eq_table(rs)))
            point = rs + r_b
        else:
            bound = rs[::-1]  # these sum-checks bind the highest variable first
            if stage.kind == "fused":  # A(s) = eq(r_b, s_batch) · W̃(r_o, s_width)
                width = _log2(layer.n_in)
                w_row = X.vecmat_small(X.eq_table(r_o), prepared.weights[stage.index])
                weight = X.inner(w_row, X.eq_table(bound[:width]))
                weight = X.mul(weight, X.eq_value(r_b, bound[width:]))
            else:
                weight = X.eq_value(point, bound)
            expected = X.mul(X.mul(weight, final), final)
            point = bound
        if expected != claim:
            raise ProofRejected(f"{where}: final check failed")
        claim = final
        if any(later.messages for later in plan[number:]):
            message = yield None
    if X.mle_base(np.ascontiguousarray(x).ravel(), point) != claim:
        raise ProofRejected("the claim about the input does not match the input")
    return outputs


def run_interactive(
    circuit: Circuit, x: np.ndarray, *, seed: int | None = None, protocol: str = "fused"
):
    """Prover and verifier in one process; returns the verified outputs (padded)."""
    prepared = PreparedVerifier.prepare(circuit)
    x = circuit.pad_inputs(x) if x.shape != (circuit.batch, circuit.input_width) else x
    prover = Prover(circuit, protocol).run(x)
    check = verifier(prepared, x, RandomChallenges(seed), protocol)
    next(check)
    message = next(prover)
    while True:
        try:
            reply = check.send(message)
        except StopIteration as done:
            return done.value
        message = prover.send(reply)


def prove_noninteractive(
    circuit: Circuit,
    x: np.ndarray,
    values: list[np.ndarray] | None = None,
    *,
    protocol: str = "fused",
    count: int | None = None,
) -> tuple[np.ndarray, list[list[int]]]:
    """Fiat–Shamir: the outputs and the list of prover messages (after the outputs).
    ``values``: the layer values of ``circuit.forward(x)``, if already computed;
    ``count``: how many rows of ``x`` are real inputs (bound in the statement)."""
    prover = Prover(circuit, protocol).run(x, values)
    first = next(prover)
    outputs = first["values"]
    transcript = statement(circuit, x, outputs, protocol, count)
    point = [transcript.draw_ext() for _ in range(_log2(outputs.size))]
    messages: list[list[int]] = []
    reply: Any = point
    while True:
        try:
            message = prover.send(reply)
        except StopIteration:
            return outputs, messages
        messages.append(list(message["values"]))
        transcript.absorb(message["kind"], message["values"])
        reply = transcript.draw_ext() if message["kind"] == "round" else None


def verify_noninteractive(
    prepared: PreparedVerifier,
    x: np.ndarray,
    outputs: np.ndarray,
    messages: list,
    *,
    protocol: str = "fused",
    count: int | None = None,
) -> np.ndarray:
    """Check a Fiat–Shamir proof; the outputs, or :class:`ProofRejected`. ``count`` must
    be the prover's (it is bound in the statement)."""
    circuit = prepared.circuit
    kinds = message_kinds(circuit, protocol)
    transcript = statement(circuit, x, outputs, protocol, count)
    check = verifier(prepared, x, transcript, protocol)
    next(check)
    if not isinstance(messages, list) or len(messages) != len(kinds):
        raise ProofRejected(f"a proof for this circuit has {len(kinds)} messages")
    try:
        check.send({"kind": "outputs", "values": np.asarray(outputs, dtype=np.uint64).ravel()})
        for kind, values in zip(kinds, messages, strict=True):
            check.send({"kind": kind, "values": values})
    except StopIteration as done:
        return done.value
    raise ProofRejected("the proof ended early")


def message_kinds(circuit: Circuit, protocol: str = "fused") -> list[str]:
    kinds = []
    for stage in stages(circuit, protocol):
        kinds += (["round"] * stage.rounds + ["final"])[: stage.messages]
    return kinds


__all__ = [
    "PROTOCOLS",
    "Prover",
    "Stage",
    "PreparedVerifier",
    "RandomChallenges",
    "check_soundness",
    "message_kinds",
    "noninteractive_soundness",
    "prove_noninteractive",
    "run_interactive",
    "soundness",
    "stages",
    "verifier",
    "verify_noninteractive",
]
