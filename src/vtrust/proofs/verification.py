"""The verifier's decision on a proof document, from the verifier's side.

:func:`check_document` takes everything it compares from the caller — the circuit the
verifier compiled from its own model, the model's hash, and (if the verifier has them)
the images it sent — and only the claims from the document: the statement must be about
that circuit and model, its inputs valid quantised pixels with zero padding, equal to the
verifier's own quantisation of its images when given, and the Fiat–Shamir proof must
check. Anything else is a :class:`~vtrust.errors.ProofRejected`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtrust.errors import ProofRejected
from vtrust.proofs import field as F
from vtrust.proofs.files import parse_statement
from vtrust.proofs.protocol import PreparedVerifier, verify_noninteractive
from vtrust.proofs.quantize import CompiledNetwork, quantize_inputs


@dataclass(frozen=True)
class Verdict:
    """An accepted proof: the verified logits' predictions and what was checked."""

    predictions: list[int]
    count: int
    inputs_checked: bool
    soundness_bits: float
    precompute_seconds: float
    verify_seconds: float


def expected_inputs(compiled: CompiledNetwork, images: np.ndarray) -> np.ndarray:
    """The verifier's own padded field inputs for the images it sent."""
    return compiled.circuit.pad_inputs(F.elements(quantize_inputs(images, compiled.spec)))


def check_document(
    document: dict[str, Any],
    compiled: CompiledNetwork,
    model_sha256: str,
    images: np.ndarray | None = None,
) -> Verdict:
    """Accept ``document`` (a framed proof file) or raise :class:`ProofRejected`."""
    circuit = compiled.circuit
    started = time.perf_counter()
    prepared = PreparedVerifier.prepare(circuit)
    precompute = time.perf_counter() - started
    inputs, outputs, messages, count = parse_statement(
        document, circuit, model_sha256, input_max=compiled.spec.input_scale
    )
    if images is not None:
        mine = expected_inputs(compiled, images)
        if count != len(images) or not np.array_equal(inputs, mine):
            raise ProofRejected("the proof is about other inputs than the ones you sent")
    started = time.perf_counter()
    verify_noninteractive(
        prepared, inputs, outputs, messages, protocol=document["protocol"], count=count
    )
    seconds = time.perf_counter() - started
    logits = F.signed(outputs[:count, : circuit.n_outputs])
    return Verdict(logits.argmax(axis=1).tolist(), count, images is not None,
                   prepared.soundness_bits, precompute, seconds)  # fmt: skip
