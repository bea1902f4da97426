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

At the input the verifier evaluates the MLE of the input it knows. Both parties are
generators exchanging plain integer lists, so they can run in different processes;
:func:`run_interactive` connects them in one. In Fiat–Shamir mode both derive every
challenge from a :class:`~vtrust.proofs.sumcheck.Transcript` that absorbs the statement
(circuit hash, protocol, inputs, outputs) first and then every prover message.
"""

from __future__ import annotations

import secrets
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtrust.errors import InputError, ProofRejected
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


def soundness(circuit: Circuit, protocol: str = "fused") -> dict[str, Any]:
    """Soundness error bounds: the output claim (Schwartz–Zippel) and every stage's
    sum-check (degree × rounds / p; an "input" stage is an exact check: 0); the total is
    their sum (union bound)."""
    per_stage = [stage.degree * stage.rounds / F.P for stage in stages(circuit, protocol)]
    output = _log2(circuit.batch * circuit.output_width) / F.P
    total = output + sum(per_stage)
    return {"output": output, "stages": per_stage, "total": total}


def check_soundness(circuit: Circuit) -> float:
    """The larger bound of the two protocols; InputError if it exceeds 2^-40."""
    bound = max(soundness(circuit, protocol)["total"] for protocol in PROTOCOLS)
    if bound > MAX_SOUNDNESS_ERROR:
        raise InputError(f"soundness error {bound:.3g} exceeds 2^-40 for this circuit")
    return bound


def statement(
    circuit: Circuit, x: np.ndarray, outputs: np.ndarray, protocol: str = "fused"
) -> S.Transcript:
    """A transcript that has absorbed the statement: circuit, protocol, inputs, outputs."""
    t = S.Transcript(bytes.fromhex(circuit.sha256()))  # cached per circuit object
    t.absorb("protocol", protocol.encode())
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
        claim = int(F.mle(values[-1].ravel(), point))  # what the verifier holds now
        for stage in self.stages:
            layer = circuit.layers[stage.index]
            if stage.kind == "input":  # the verifier evaluates this claim itself
                return
            if stage.kind == "linear":
                r_o, r_b = _split(point, layer)
                f = F.vecmat(F.eq_table(r_b), values[stage.index])
                g = F.vecmat_small(F.eq_table(r_o), circuit.prepared_weights[stage.index])
                rs = []
                for _ in range(stage.rounds):
                    r = yield {"kind": "round", "values": S.product_round(f, g)}
                    f, g = F.fold(f, r), F.fold(g, r)
                    rs.append(int(r))
                claim = int(f[0])
                yield {"kind": "final", "values": [claim]}
                point = rs + list(r_b)
                continue
            if stage.kind == "fused":
                r_o, r_b = _split(point, layer)
                weights = F.vecmat_small(F.eq_table(r_o), circuit.prepared_weights[stage.index])
                claim = (claim - int(F.mle(layer.bias, r_o))) % F.P
                square = S.SquareProver(values[stage.index - 1], r_b, weights, claim)
            else:
                square = S.SquareProver.for_eq(values[stage.index], point, claim)
            rs = []
            for _ in range(stage.rounds):
                r = yield {"kind": "round", "values": square.message()}
                square.bind(int(r))
                rs.append(int(r))
            claim = square.final
            yield {"kind": "final", "values": [claim]}
            point = rs[::-1]  # bound from the highest variable down


def _split(point: list[int], layer: Linear) -> tuple[list[int], list[int]]:
    """A Linear layer's output point as (r_o, r_b): output-column and batch coordinates."""
    cols = _log2(layer.n_out)
    return list(point[:cols]), list(point[cols:])


class RandomChallenges:
    """Interactive mode: challenges from ``secrets`` (or a seeded generator for tests)."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = None if seed is None else np.random.default_rng(seed)

    def absorb(self, label: str, values) -> None:
        """The interactive verifier's challenges do not depend on the messages."""

    def draw(self) -> int:
        if self.rng is None:
            return secrets.randbelow(F.P)
        return int(self.rng.integers(0, F.P, dtype=np.uint64))


@dataclass
class PreparedVerifier:
    """What the verifier computes from the circuit before any proof (timed separately):
    the weights as float64 matrices for its MLE evaluations, the biases as tables."""

    circuit: Circuit
    weights: list[F.SmallMatrix | None]
    digest: str

    @classmethod
    def prepare(cls, circuit: Circuit) -> PreparedVerifier:
        check_soundness(circuit)
        return cls(circuit, circuit.prepared_weights, circuit.sha256())


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
    point = [challenges.draw() for _ in range(_log2(n_out))]
    claim = int(F.mle(flat, point))
    if any(stage.messages for stage in plan):
        message = yield point
    for number, stage in enumerate(plan, start=1):
        layer = circuit.layers[stage.index]
        where = f"stage {number} ({stage.kind}, layer {stage.index + 1})"
        if stage.kind != "square":
            r_o, r_b = _split(point, layer)
            claim = (claim - int(F.mle(layer.bias, r_o))) % F.P
        if stage.kind == "input":  # Σ_k x̃(r_b, k) W̃(r_o, k), from x and W directly
            x_row = F.vecmat(F.eq_table(r_b), np.ascontiguousarray(x, dtype=np.uint64))
            w_row = F.vecmat_small(F.eq_table(r_o), prepared.weights[stage.index])
            if int(F.inner(x_row, w_row)) != claim:
                raise ProofRejected("the claim about the first layer does not match the input")
            return outputs
        rs = []
        for i in range(stage.rounds):
            g = _values(message, "round", stage.degree + 1)
            if (g[0] + g[1]) % F.P != claim:
                raise ProofRejected(f"{where}, round {i + 1}: g(0) + g(1) ≠ claim")
            challenges.absorb("round", g)
            r = challenges.draw()
            claim = S.interpolate(g, r)
            rs.append(r)
            message = yield r
        (final,) = _values(message, "final", 1)
        challenges.absorb("final", [final])
        if stage.kind == "linear":
            w_row = F.vecmat_small(F.eq_table(r_o), prepared.weights[stage.index])
            expected = final * int(F.inner(w_row, F.eq_table(rs))) % F.P
            point = rs + r_b
        else:
            bound = rs[::-1]  # these sum-checks bind the highest variable first
            if stage.kind == "fused":  # A(s) = eq(r_b, s_batch) · W̃(r_o, s_width)
                width = _log2(layer.n_in)
                w_row = F.vecmat_small(F.eq_table(r_o), prepared.weights[stage.index])
                weight = int(F.inner(w_row, F.eq_table(bound[:width])))
                weight = weight * S.eq_value(r_b, bound[width:]) % F.P
            else:
                weight = S.eq_value(point, bound)
            expected = weight * final % F.P * final % F.P
            point = bound
        if expected != claim:
            raise ProofRejected(f"{where}: final check failed")
        claim = final
        if any(later.messages for later in plan[number:]):
            message = yield None
    if int(F.mle(np.ascontiguousarray(x).ravel(), point)) != claim:
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
) -> tuple[np.ndarray, list[list[int]]]:
    """Fiat–Shamir: the outputs and the list of prover messages (after the outputs).
    ``values``: the layer values of ``circuit.forward(x)``, if already computed."""
    prover = Prover(circuit, protocol).run(x, values)
    first = next(prover)
    outputs = first["values"]
    transcript = statement(circuit, x, outputs, protocol)
    point = [transcript.draw() for _ in range(_log2(outputs.size))]
    messages: list[list[int]] = []
    reply: Any = point
    while True:
        try:
            message = prover.send(reply)
        except StopIteration:
            return outputs, messages
        messages.append(list(message["values"]))
        transcript.absorb(message["kind"], message["values"])
        reply = transcript.draw() if message["kind"] == "round" else None


def verify_noninteractive(
    prepared: PreparedVerifier,
    x: np.ndarray,
    outputs: np.ndarray,
    messages: list,
    *,
    protocol: str = "fused",
) -> np.ndarray:
    """Check a Fiat–Shamir proof; the outputs, or :class:`ProofRejected`."""
    circuit = prepared.circuit
    kinds = message_kinds(circuit, protocol)
    transcript = statement(circuit, x, outputs, protocol)
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
    "prove_noninteractive",
    "run_interactive",
    "soundness",
    "stages",
    "verifier",
    "verify_noninteractive",
]
