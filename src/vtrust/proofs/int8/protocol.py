"""Proofs that a batch of outputs came from an :class:`~vtrust.proofs.int8.network.Int8Network`
on given inputs, for a verifier who holds the network (as for the x² circuits).

What the prover sends, and what the verifier does with it:

1. ``outputs``: the last layer's accumulators (the logits), in the clear.
2. ``quotients``, one message per requantisation: ``q = ⌊(M·acc + 2^(k−1)) / 2^T⌋`` for
   every real activation (T ≤ k, the layer's table bits). The verifier computes the int8
   output ``clamp(q >> (k − T), lo, 127)`` itself — the ReLU and the clamp are exact
   integer operations on values it holds — and so knows every layer's input: max-pools,
   flattens and residual adds it evaluates itself. These quotients are the auxiliary values in the
   clear (≈ one int8 activation plus k − T bits each; counted in the proof size).
3. The output check: at a random point r, the MLE of the claimed outputs must equal the
   MLE of the last layer applied to its (known) input, which the verifier evaluates
   from the weights without computing the layer (:func:`~vtrust.proofs.int8.mle.linear_mle`).
4. For every requantisation, a range proof (:mod:`vtrust.proofs.logup`) that every
   remainder ``d = M·acc + 2^(k−1) − 2^T·q`` lies in [0, 2^T): the LogUp-GKR ends with
   a claim on d's MLE at a random point, which the verifier evaluates itself as
   ``linear_mle(…, M) + 2^(k−1) − 2^T·q̃`` — from the true accumulators, never from
   the prover. So a quotient that is off by one anywhere (a wrong ReLU, a wrong
   rounding, a max-pool that picked another value upstream) leaves a remainder outside
   the table and is rejected. Large layers are split into chunks of 2^20 lookups, each
   its own range proof, which keeps every challenge's error below 2^-100.

Fiat–Shamir: the transcript absorbs the statement (network hash, input count, inputs)
and then every message; both modes run the same code (:mod:`vtrust.proofs.channel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtrust.errors import InputError, ProofRejected
from vtrust.proofs import ext as X
from vtrust.proofs import field as F
from vtrust.proofs import logup
from vtrust.proofs.channel import (
    DRAW,
    FiatShamirChannel,
    InteractiveChannel,
    Send,
    VerifierChannel,
    prove_fiat_shamir,
)
from vtrust.proofs.int8.mle import bits, linear_mle, padded_dims, tensor_mle
from vtrust.proofs.int8.network import (
    LINEAR,
    Add,
    Int8Network,
    MaxPool,
    Requant,
    channel_multipliers,
    max_pool,
    rounded,
)
from vtrust.proofs.sumcheck import Transcript

CHUNK_BITS = 20  #: lookups per range proof: at most 2^20
TABLE_BITS = 16  #: remainder tables: at most 2^16 entries (and never beyond the shift) ...
TABLE_OFFSET = 3  #: ... and 2^-3 of the chunk: measured, the smallest proofs (fewer
#: multiplicities outweigh the quotients' extra bits; LeNet-5, VGG11, the CIFAR CNN)
MIN_BITS = 100.0  #: refuse a plan whose weakest Fiat–Shamir challenge is below this


@dataclass(frozen=True)
class Block:
    """One requantised linear layer's range proofs: ``index`` of the linear layer,
    ``table_bits`` T, ``chunk_bits`` (lookups per proof, log2) and ``chunks``."""

    index: int
    table_bits: int
    chunk_bits: int
    chunks: int


def plan(network: Int8Network, batch: int) -> list[Block]:
    """The range proofs for a batch of ``batch`` inputs."""
    out = []
    for index in network.linear_indices[:-1]:
        requant = network.layers[index + 1]
        total = sum(bits(d) for d in padded_dims((batch, *network.shapes[index + 1])))
        chunk = min(total, CHUNK_BITS)
        table = min(requant.max_table_bits, max(chunk - TABLE_OFFSET, 0), TABLE_BITS)
        out.append(Block(index, table, chunk, 1 << (total - chunk)))
    return out


def soundness(network: Int8Network, batch: int) -> dict[str, Any]:
    """Interactive error bound (union over the output check and every range proof) and
    the Fiat–Shamir level in bits (the weakest single challenge)."""
    out_vars = sum(bits(d) for d in padded_dims((batch, network.n_outputs)))
    q = logup.CHALLENGE_FIELD_SIZE
    blocks = plan(network, batch)
    ranges = [b.chunks * logup.soundness_error(b.chunk_bits, b.table_bits) for b in blocks]
    level = min([logup.noninteractive_bits(b.chunk_bits, b.table_bits) for b in blocks]
                + [-math.log2(max(out_vars, 1) / q)])  # fmt: skip
    return {"output": out_vars / q, "range_proofs": ranges, "total": out_vars / q + sum(ranges),
            "bits": level}  # fmt: skip


@dataclass(frozen=True)
class Witness:
    """What a requantised layer's proof sends and proves: the quotients (N, …) and the
    remainders padded to the layer's tensor (flat; integers in the table, or field
    elements)."""

    quotients: np.ndarray
    remainders: np.ndarray


def witness(network: Int8Network, values: list[np.ndarray]) -> list[Witness]:
    """Every requantised layer's :class:`Witness` from the forward values."""
    batch = len(values[0])
    out = []
    for block in plan(network, batch):
        acc, requant = values[block.index + 1], network.layers[block.index + 1]
        a = rounded(acc, requant)
        quotient = a >> block.table_bits
        a -= quotient << block.table_bits  # now the remainders: 0 ≤ d < 2^T ≤ 2^20
        fill = _padding_remainder(requant, block.table_bits)
        d = np.full(padded_dims(acc.shape), fill, dtype=np.uint32)
        d[tuple(slice(0, s) for s in acc.shape)] = a
        del a
        out.append(Witness(quotient, d.ravel()))
    return out


def prover(
    network: Int8Network,
    x: np.ndarray,
    values: list[np.ndarray] | None = None,
    witnesses: list[Witness] | None = None,
):
    """The prover (a channel generator, :mod:`vtrust.proofs.channel`) for int inputs x;
    ``values``: ``network.forward(x)`` if already computed; ``witnesses``: what to
    send and prove instead of :func:`witness` of the values (the attack catalog's
    dishonest provers)."""
    values = network.forward(x) if values is None else values
    batch = len(values[0])
    witnesses = witness(network, values) if witnesses is None else witnesses
    yield Send("outputs", np.ascontiguousarray(values[-1].ravel(), dtype=np.int64))
    for w in witnesses:
        yield Send("quotients", np.ascontiguousarray(w.quotients.ravel(), dtype=np.int64))
    for _ in range(sum(bits(d) for d in padded_dims(values[-1].shape))):
        yield DRAW  # the output check's point: the verifier's business
    for block, w in zip(plan(network, batch), witnesses, strict=True):
        size = 1 << block.chunk_bits
        for chunk in range(block.chunks):
            part = w.remainders[chunk * size : (chunk + 1) * size]
            yield from logup.prove_range(part, block.table_bits)


def quotient_bound(network: Int8Network, block: Block) -> int:
    """Quotients the verifier admits: |q| < this. An honest ⌊a / 2^T⌋ with |a| ≤ B (the
    bound analysis) has |q| ≤ ⌊B / 2^T⌋ + 1. The bound is what makes the range check
    mean what it says: the remainder a − 2^T·q is checked as a field element, and
    without a bound a quotient off by 2^(61−T) leaves a remainder ≡ d − 1 (mod p),
    inside the table, for any d ≥ 1 (2^T · 2^(61−T) = 2^61 ≡ 1) — an activation forged to
    127 passes. With |q| < ⌊B / 2^T⌋ + 2 and B < 2^58 every admitted remainder lies in
    (−p/2, p/2), where "≡ r (mod p), 0 ≤ r < 2^T" means "= r"."""
    return (network.rounded_bound(block.index) >> block.table_bits) + 2


def _padding_remainder(requant: Requant, table_bits: int) -> int:
    """The remainder of a padding entry (acc = 0): 2^(k−1) mod 2^T."""
    return (1 << (requant.shift - 1)) % (1 << table_bits)


@dataclass(frozen=True)
class Verified:
    """What a verifier accepted: the outputs (N, n_outputs) and every requantised
    layer's int8 output (which the proof revealed)."""

    outputs: np.ndarray
    activations: dict[int, np.ndarray]


def verify(network: Int8Network, x: np.ndarray, channel: VerifierChannel) -> Verified:
    """The verifier: :class:`Verified`, or :class:`ProofRejected`. Everything it
    compares comes from ``network`` and ``x`` (its own) and the messages it checks."""
    x = network.check_inputs(x)
    batch = len(x)
    out_shape = network.shapes[-1]
    last_bound = network.accumulator_bounds[-1] + 1
    outputs = channel.receive("outputs", batch * network.n_outputs, bound=last_bound, array=True)
    outputs = outputs.reshape(batch, *out_shape)
    blocks = {b.index: b for b in plan(network, batch)}
    known, inputs, quotients, activations = x, {}, {}, {}
    held = {-1: x}  # every layer's output the verifier holds, by layer index (−1: input)
    for i, layer in enumerate(network.layers):
        if isinstance(layer, LINEAR):
            inputs[i] = known
        elif isinstance(layer, Requant):
            block = blocks[i - 1]
            shape = (batch, *network.shapes[i])
            q = channel.receive("quotients", math.prod(shape), bound=quotient_bound(network, block),
                                array=True)  # fmt: skip
            quotients[i - 1] = q.reshape(shape)
            known = layer.apply(quotients[i - 1], block.table_bits)
            activations[i] = known
        elif isinstance(layer, MaxPool):
            known = max_pool(known, layer.size)
        elif isinstance(layer, Add):
            known = layer.apply(known, held[layer.source])
            activations[i] = known
        else:
            known = known.reshape(batch, -1)
        held[i] = known
    last = network.linear_indices[-1]
    ones = np.ones(out_shape[0], dtype=np.int64)
    point = [channel.draw() for _ in range(sum(bits(d) for d in padded_dims(outputs.shape)))]
    expected = linear_mle(network.layers[last], inputs[last], ones, point, out_shape)
    if tensor_mle(outputs, point) != expected:
        raise ProofRejected("the outputs do not match the last layer on its input")
    for index, block in blocks.items():
        _verify_block(network, index, block, inputs[index], quotients[index], channel)
    return Verified(outputs, activations)


def _verify_block(network, index, block, layer_input, quotient, channel) -> None:
    """The range proofs of one requantised layer, chunk by chunk: each chunk is a slice
    of the padded tensor (its top coordinates fixed), so q̃ is evaluated on the slice."""
    layer, requant = network.layers[index], network.layers[index + 1]
    shape = network.shapes[index + 1]
    dims = padded_dims(quotient.shape)
    padded = np.full(dims, (1 << (requant.shift - 1)) >> block.table_bits, dtype=np.int64)
    padded[tuple(slice(0, s) for s in quotient.shape)] = quotient
    padded = padded.ravel()
    multipliers = channel_multipliers(requant, shape[0])
    half = X.lift(1 << (requant.shift - 1))
    step = 1 << block.table_bits
    size = 1 << block.chunk_bits
    high_bits = int(block.chunks).bit_length() - 1
    for chunk in range(block.chunks):
        high = [X.lift((chunk >> j) & 1) for j in range(high_bits)]
        q_chunk = F.elements(padded[chunk * size : (chunk + 1) * size])

        def lookup_mle(s: list[X.Ext], high=high, q_chunk=q_chunk) -> X.Ext:
            low = list(s[: block.chunk_bits])
            scaled = linear_mle(layer, layer_input, multipliers, low + high, shape)
            remainder = X.sub(X.add(scaled, half), X.scale(X.mle_base(q_chunk, low), step))
            inside = X.ONE  # the lookups padded with zeros beyond the chunk
            for coordinate in s[block.chunk_bits :]:
                inside = X.mul(inside, X.sub(X.ONE, coordinate))
            return X.mul(remainder, inside)

        try:
            logup.verify_range(channel, block.chunk_bits, block.table_bits, lookup_mle)
        except ProofRejected as exc:
            where = f"{network.names[index + 1]} (chunk {chunk + 1} of {block.chunks})"
            raise ProofRejected(f"{where}: {exc.reason}") from None


def statement(network: Int8Network, x: np.ndarray) -> Transcript:
    """A transcript that has absorbed the statement: network hash, batch, inputs."""
    t = Transcript(bytes.fromhex(network.sha256()))
    t.absorb("challenge-field", b"F_p^2: i^2 = -1")
    t.absorb("protocol", b"int8-logup/1")
    t.absorb("count", len(x).to_bytes(8, "little"))
    t.absorb("inputs", F.compact_bytes(F.elements(np.asarray(x, dtype=np.int64))))
    return t


def check_plan(network: Int8Network, batch: int) -> dict[str, Any]:
    """The soundness statement; InputError if any challenge is weaker than 2^-100."""
    stated = soundness(network, batch)
    if stated["bits"] < MIN_BITS:
        raise InputError(f"Fiat–Shamir security {stated['bits']:.1f} bits is below {MIN_BITS}")
    return stated


def prove_noninteractive(network: Int8Network, x: np.ndarray, values=None) -> list[Send]:
    """A Fiat–Shamir proof: the list of messages."""
    x = network.check_inputs(x)
    check_plan(network, len(x))
    return prove_fiat_shamir(prover(network, x, values), statement(network, x))


def verify_noninteractive(network: Int8Network, x: np.ndarray, messages: list[Send]) -> Verified:
    """Check a Fiat–Shamir proof: :class:`Verified` or :class:`ProofRejected`."""
    x = network.check_inputs(x)
    check_plan(network, len(x))
    if not isinstance(messages, list):
        raise ProofRejected("a proof is a list of messages")
    channel = FiatShamirChannel(messages, statement(network, x))
    verified = verify(network, x, channel)
    channel.finish()
    return verified


def run_interactive(network: Int8Network, x: np.ndarray, *, seed: int | None = None) -> Verified:
    """Prover and verifier in one process, challenges from :mod:`secrets` (a ``seed``
    makes them predictable: tests only)."""
    from vtrust.proofs.protocol import RandomChallenges

    x = network.check_inputs(x)
    check_plan(network, len(x))
    channel = InteractiveChannel(prover(network, x), RandomChallenges(seed))
    return verify(network, x, channel)


def proof_size(messages: list[Send]) -> dict[str, int]:
    """Bytes of a proof in a compact binary encoding: integer messages (outputs,
    quotients, multiplicities) as LEB128 varints of their zigzag codes, field elements
    8 bytes each. ``auxiliary``: the quotients and multiplicities read in the clear."""
    sizes = {"outputs": 0, "quotients": 0, "multiplicities": 0, "field": 0}
    for m in messages:
        if m.kind in ("outputs", "quotients", "multiplicities"):
            sizes[m.kind] += _varint_bytes(np.asarray(m.values, dtype=np.int64))
        else:
            sizes["field"] += 8 * len(m.values)
    sizes["auxiliary"] = sizes["quotients"] + sizes["multiplicities"]
    sizes["total"] = sizes["outputs"] + sizes["auxiliary"] + sizes["field"]
    return sizes


def _varint_bytes(values: np.ndarray) -> int:
    codes = np.where(values >= 0, 2 * values, -2 * values - 1).astype(np.uint64)
    lengths = np.maximum(1, np.ceil(np.log2(codes.astype(np.float64) + 1) / 7)).astype(np.int64)
    return int(lengths.sum())
