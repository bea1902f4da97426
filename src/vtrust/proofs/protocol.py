"""SafetyNets-style interactive proof that a batch of outputs came from a circuit.

The prover evaluates every layer, then proves from the output back to the input,
GKR-style. The verifier starts from the MLE of the claimed outputs at a random point;
each layer turns a claim "MLE of my output at point q equals v" into a claim about the
MLE of its input:

* :class:`~vtrust.proofs.circuit.Square`: ``Ỹ(q) = Σ_x eq(q, x) Z̃(x)²`` by a degree-3
  sum-check over all of the layer's variables; the prover's final message is ``Z̃(s)``.
* :class:`~vtrust.proofs.circuit.Linear`: subtract the bias MLE, then
  ``P̃(r_o, r_b) = Σ_k X̃(r_b, k) W̃(r_o, k)`` by a degree-2 sum-check over the input
  width (Thaler's protocol for matrix products); the prover's final message is
  ``X̃(r_b, s)``, the verifier evaluates ``W̃(r_o, s)`` itself (it holds the weights).

At the input the verifier evaluates the MLE of the input it knows. Both parties are
generators exchanging plain integer lists, so they can run in different processes;
:func:`run_interactive` connects them in one. In Fiat–Shamir mode both derive every
challenge from a :class:`~vtrust.proofs.sumcheck.Transcript` that absorbs the statement
(circuit hash, inputs, outputs) first and then every prover message.
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


def soundness(circuit: Circuit) -> dict[str, Any]:
    """Soundness error bounds: the output claim (Schwartz–Zippel) and every layer's
    sum-check (degree × rounds / p); the total is their sum (union bound)."""
    per_layer = []
    for layer in circuit.layers:
        if isinstance(layer, Linear):
            per_layer.append(2 * _log2(layer.n_in) / F.P)
        else:
            per_layer.append(3 * _log2(circuit.batch * layer.size) / F.P)
    output = _log2(circuit.batch * circuit.output_width) / F.P
    total = output + sum(per_layer)
    return {"output": output, "layers": per_layer, "total": total}


def check_soundness(circuit: Circuit) -> float:
    bound = soundness(circuit)["total"]
    if bound > MAX_SOUNDNESS_ERROR:
        raise InputError(f"soundness error {bound:.3g} exceeds 2^-40 for this circuit")
    return bound


def statement(circuit: Circuit, x: np.ndarray, outputs: np.ndarray) -> S.Transcript:
    """A transcript that has absorbed the statement: circuit, inputs and outputs."""
    t = S.Transcript(bytes.fromhex(circuit.sha256()))  # cached per circuit object
    t.absorb("inputs", F.compact_bytes(x))
    t.absorb("outputs", F.compact_bytes(outputs))
    return t


class Prover:
    """Holds the circuit; :meth:`run` is the prover's side of the conversation."""

    def __init__(self, circuit: Circuit) -> None:
        self.circuit = circuit

    def run(
        self, x: np.ndarray, values: list[np.ndarray] | None = None
    ) -> Generator[Message, Any, None]:
        """Yields messages; each ``send`` delivers the verifier's reply (a point, a
        challenge, or ``None`` after a layer's final message). ``values`` are the layer
        values of ``circuit.forward(x)`` when the caller already has them (the proof
        then costs only the extra prover work)."""
        values = self.circuit.forward(x) if values is None else values
        point = yield {"kind": "outputs", "values": values[-1]}
        claim = int(F.mle(values[-1].ravel(), point))  # what the verifier holds now
        for index in range(len(self.circuit.layers) - 1, -1, -1):
            layer = self.circuit.layers[index]
            below = values[index]
            if isinstance(layer, Linear):
                cols = _log2(layer.n_out)
                r_o, r_b = point[:cols], point[cols:]
                f = F.vecmat(F.eq_table(r_b), below)
                g = F.matmul_small(_row(F.eq_table(r_o)), self.circuit.prepared_weights[index])[0]
                rs = []
                for _ in range(_log2(layer.n_in)):
                    r = yield {"kind": "round", "values": S.product_round(f, g)}
                    f, g = F.fold(f, r), F.fold(g, r)
                    rs.append(int(r))
                claim = int(f[0])
                yield {"kind": "final", "values": [claim]}
                point = rs + list(r_b)
            else:
                square = S.SquareProver(below, point, claim, squares=values[index + 1])
                rs = []
                for _ in range(len(point)):
                    evals = square.message()
                    r = yield {"kind": "round", "values": evals}
                    square.bind(int(r))
                    rs.append(int(r))
                claim = square.final
                yield {"kind": "final", "values": [claim]}
                point = rs


def _row(v: np.ndarray) -> np.ndarray:
    """A vector as a (1, n) matrix of field elements."""
    return np.ascontiguousarray(v, dtype=np.uint64)[None, :]


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
    prepared: PreparedVerifier, x: np.ndarray, challenges
) -> Generator[Any, Message, np.ndarray]:
    """The verifier's side: receives messages, replies with challenges, returns the
    verified outputs (padded) or raises :class:`ProofRejected`."""
    circuit = prepared.circuit
    message = yield None
    n_out = circuit.batch * circuit.output_width
    flat = _outputs(message, n_out)
    outputs = flat.reshape(circuit.batch, circuit.output_width)
    challenges.absorb("outputs", flat.astype("<u8").tobytes())
    point = [challenges.draw() for _ in range(_log2(n_out))]
    claim = int(F.mle(flat, point))
    message = yield point
    for index in range(len(circuit.layers) - 1, -1, -1):
        layer = circuit.layers[index]
        if isinstance(layer, Linear):
            cols = _log2(layer.n_out)
            r_o, r_b = point[:cols], point[cols:]
            claim = (claim - int(F.mle(layer.bias, r_o))) % F.P
            rounds, degree = _log2(layer.n_in), 2
        else:
            rounds, degree = len(point), 3
        rs = []
        for i in range(rounds):
            g = _values(message, "round", degree + 1)
            if (g[0] + g[1]) % F.P != claim:
                raise ProofRejected(f"layer {index + 1}, round {i + 1}: g(0) + g(1) ≠ claim")
            challenges.absorb("round", g)
            r = challenges.draw()
            claim = S.interpolate(g, r)
            rs.append(r)
            message = yield r
        (final,) = _values(message, "final", 1)
        challenges.absorb("final", [final])
        if isinstance(layer, Linear):
            w_row = F.matmul_small(_row(F.eq_table(r_o)), prepared.weights[index])[0]
            expected = final * int(F.inner(w_row, F.eq_table(rs))) % F.P
            point = rs + list(r_b)
        else:
            expected = S.eq_value(point, rs) * final % F.P * final % F.P
            point = rs
        if expected != claim:
            raise ProofRejected(f"layer {index + 1}: final check failed")
        claim = final
        if index > 0:
            message = yield None
    if int(F.mle(np.ascontiguousarray(x).ravel(), point)) != claim:
        raise ProofRejected("the claim about the input does not match the input")
    return outputs


def run_interactive(circuit: Circuit, x: np.ndarray, *, seed: int | None = None):
    """Prover and verifier in one process; returns the verified outputs (padded)."""
    prepared = PreparedVerifier.prepare(circuit)
    x = circuit.pad_inputs(x) if x.shape != (circuit.batch, circuit.input_width) else x
    prover = Prover(circuit).run(x)
    check = verifier(prepared, x, RandomChallenges(seed))
    next(check)
    message = next(prover)
    while True:
        try:
            reply = check.send(message)
        except StopIteration as done:
            return done.value
        message = prover.send(reply)


def prove_noninteractive(
    circuit: Circuit, x: np.ndarray, values: list[np.ndarray] | None = None
) -> tuple[np.ndarray, list[list[int]]]:
    """Fiat–Shamir: the outputs and the list of prover messages (after the outputs).
    ``values``: the layer values of ``circuit.forward(x)``, if already computed."""
    prover = Prover(circuit).run(x, values)
    first = next(prover)
    outputs = first["values"]
    transcript = statement(circuit, x, outputs)
    transcript.absorb("outputs", np.ascontiguousarray(outputs, "<u8").tobytes())
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
    prepared: PreparedVerifier, x: np.ndarray, outputs: np.ndarray, messages: list
) -> np.ndarray:
    """Check a Fiat–Shamir proof; the outputs, or :class:`ProofRejected`."""
    circuit = prepared.circuit
    transcript = statement(circuit, x, outputs)
    check = verifier(prepared, x, transcript)
    next(check)
    kinds = message_kinds(circuit)
    if not isinstance(messages, list) or len(messages) != len(kinds):
        raise ProofRejected(f"a proof for this circuit has {len(kinds)} messages")
    try:
        check.send({"kind": "outputs", "values": np.asarray(outputs, dtype=np.uint64).ravel()})
        for kind, values in zip(kinds, messages, strict=True):
            check.send({"kind": kind, "values": values})
    except StopIteration as done:
        return done.value
    raise ProofRejected("the proof ended early")


def message_kinds(circuit: Circuit) -> list[str]:
    kinds = []
    for layer in reversed(circuit.layers):
        rounds = (
            _log2(layer.n_in) if isinstance(layer, Linear) else _log2(circuit.batch * layer.size)
        )
        kinds += ["round"] * rounds + ["final"]
    return kinds


__all__ = [
    "Prover",
    "PreparedVerifier",
    "RandomChallenges",
    "check_soundness",
    "message_kinds",
    "prove_noninteractive",
    "run_interactive",
    "soundness",
    "verifier",
    "verify_noninteractive",
]
