"""Measuring what proofs cost, all timed in one run so ratios are meaningful: the float32
torch forward pass of the same shapes, the field forward pass, proving (extra time over
the field forward pass), the verifier's precompute and check, and the proof's size."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vtrust.proofs import field as F
from vtrust.proofs.circuit import Circuit, Linear, Square
from vtrust.proofs.protocol import PreparedVerifier, prove_noninteractive, verify_noninteractive
from vtrust.timing import median_seconds


def random_circuit(widths: list[int], batch: int, *, weight_bits: int = 4, seed: int = 0):
    """A circuit of Linear layers (random ``weight_bits`` weights) with x² between them,
    widths padded to powers of two (the TIMIT-shaped network of SafetyNets, say)."""
    rng = np.random.default_rng(seed)
    q = (1 << (weight_bits - 1)) - 1
    padded = [F.pad_pow2(w) for w in widths]
    layers: list[Linear | Square] = []
    for i, (a, b) in enumerate(zip(padded[:-1], padded[1:], strict=True)):
        w = np.zeros((b, a), dtype=np.int64)
        w[: widths[i + 1], : widths[i]] = rng.integers(-q, q + 1, (widths[i + 1], widths[i]))
        bias = np.zeros(b, dtype=np.uint64)
        bias[: widths[i + 1]] = rng.integers(0, F.P, widths[i + 1], dtype=np.uint64)
        layers.append(Linear(w, bias))
        if i < len(widths) - 2:
            layers.append(Square(b))
    return Circuit(tuple(layers), F.pad_pow2(batch), widths[0], widths[-1])


def torch_twin(circuit: Circuit) -> nn.Module:
    """A float32 torch network with the circuit's shapes (linear layers and x²)."""

    class Sq(nn.Module):
        def forward(self, x):
            return x * x

    mods: list[nn.Module] = []
    for layer in circuit.layers:
        if isinstance(layer, Linear):
            lin = nn.Linear(layer.n_in, layer.n_out)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.weight.astype(np.float32)))
            mods.append(lin)
        else:
            mods.append(Sq())
    return nn.Sequential(*mods).eval()


@dataclass(frozen=True)
class ProofCosts:
    protocol: str  # "fused" or "layered" (see vtrust.proofs.protocol)
    torch_forward: float
    field_forward: float
    extra_prover: float  # proving from the layer values the forward pass computed
    prove: float  # execute + prove: field forward and proof, one call
    precompute: float
    verify: float
    proof_kb: float  # prover messages
    statement_kb: float  # inputs and outputs

    def to_json(self) -> dict[str, float | str]:
        return {
            "protocol": self.protocol,
            "torch_forward_s": self.torch_forward,
            "field_forward_s": self.field_forward,
            "prove_s": self.prove,
            "extra_prover_s": self.extra_prover,
            "precompute_s": self.precompute,
            "verify_s": self.verify,
            "proof_kb": self.proof_kb,
            "statement_kb": self.statement_kb,
            "field_over_torch": self.field_forward / self.torch_forward,
            "extra_prover_over_field": self.extra_prover / self.field_forward,
            "verify_over_field": self.verify / self.field_forward,
        }


def measure(
    circuit: Circuit, x: np.ndarray, *, repeats: int = 5, protocol: str = "fused"
) -> ProofCosts:
    """Time every stage (median of ``repeats``, after one warm-up run that compiles the
    kernels). The extra prover time is timed directly — a Fiat–Shamir proof from the
    layer values of the forward pass — not as a difference of two noisy timings."""
    twin = torch_twin(circuit)
    xt = torch.from_numpy(F.signed(x).astype(np.float32))
    with torch.no_grad():
        for _ in range(3):  # torch's first calls set up its kernels
            twin(xt)
        torch_forward = median_seconds(lambda: twin(xt), repeats)
    values = circuit.forward(x)
    field_forward = median_seconds(lambda: circuit.forward(x), repeats)
    outputs, messages = prove_noninteractive(circuit, x, values, protocol=protocol)
    extra_prover = median_seconds(
        lambda: prove_noninteractive(circuit, x, values, protocol=protocol), repeats
    )
    prove = median_seconds(lambda: prove_noninteractive(circuit, x, protocol=protocol), repeats)
    # the verifier's precompute on circuit objects that have not cached anything yet
    precompute = median_seconds(
        lambda: PreparedVerifier.prepare(dataclasses.replace(circuit)), repeats
    )
    prepared = PreparedVerifier.prepare(dataclasses.replace(circuit))
    verify_noninteractive(prepared, x, outputs, messages, protocol=protocol)
    verify = median_seconds(
        lambda: verify_noninteractive(prepared, x, outputs, messages, protocol=protocol), repeats
    )
    proof_kb = len(json.dumps(messages, separators=(",", ":"))) / 1024
    statement_kb = len(json.dumps([x.tolist(), outputs.tolist()], separators=(",", ":"))) / 1024
    return ProofCosts(protocol, torch_forward, field_forward, extra_prover, prove, precompute,
                      verify, proof_kb, statement_kb)  # fmt: skip
