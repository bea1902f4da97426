"""Statement substitution against verifiable inference: a prover who has read the
verifier proves — honestly, so every sum-check holds — a statement of its own choosing
instead of the one the client asked about.

* ``circuit``: a coarser quantisation of the same model (fewer input and weight bits:
  cheaper, and different predictions), labelled as the verifier's circuit;
* ``inputs``: other images than the ones the client sent;
* ``pixels``: an input value no quantised pixel can take (2^20);
* ``padding``: a nonzero value in a padding row;
* ``count``: a valid proof whose ``count`` was edited afterwards.

:meth:`StatementSubstitution.attempt` hands the forged document to the verifier's
:func:`~vtrust.proofs.verification.check_document` with the verifier's own circuit and
images; the promise is broken if it is accepted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from torch import nn

from vtrust.catalog import Entry, register
from vtrust.errors import InputError, ProofRejected
from vtrust.models.files import model_sha256
from vtrust.proofs.compiler import CircuitCompiler, CircuitParams
from vtrust.proofs.files import proof_document
from vtrust.proofs.protocol import prove_noninteractive
from vtrust.proofs.verification import check_document, expected_inputs

Substitution = Literal["circuit", "inputs", "pixels", "padding", "count"]


@dataclass(frozen=True)
class StatementParams:
    """What the prover substitutes; ``input_bits``/``weight_bits``: its coarser circuit."""

    substitute: Substitution = "inputs"
    input_bits: int = 2
    weight_bits: int = 3

    def __post_init__(self) -> None:
        CircuitParams(input_bits=self.input_bits, weight_bits=self.weight_bits)


class StatementSubstitution:
    kind = "statement-substitution"

    def __init__(self, params: StatementParams) -> None:
        self.params = params

    def forge(
        self, model: nn.Module, circuit: Entry, images: np.ndarray, decoys: np.ndarray
    ) -> dict[str, Any]:
        """The prover's proof document: about ``images`` through ``circuit`` (the
        verifier's entry) but for the substituted part."""
        p = self.params
        shape = model.spec.input_shape
        entry = circuit
        if p.substitute == "circuit":
            coarse = dataclasses.replace(
                circuit.params, input_bits=p.input_bits, weight_bits=p.weight_bits
            )
            entry = Entry(circuit.name, "circuits", circuit.kind, coarse,
                          circuit.description, circuit.source)  # fmt: skip
        compiled = CircuitCompiler(entry.params).compile(model, shape)
        count = len(images)
        if count >= compiled.circuit.batch and p.substitute == "padding":
            raise InputError("a padding substitution needs fewer images than the batch")
        x = expected_inputs(compiled, decoys[:count] if p.substitute == "inputs" else images)
        if p.substitute == "pixels":
            x[0, 0] = 1 << 20
        elif p.substitute == "padding":
            x[count, 0] = 1
        outputs, messages = prove_noninteractive(compiled.circuit, x, count=count)
        document = proof_document(
            circuit=compiled.circuit, circuit_entry=circuit.to_json(),
            model_sha256=model_sha256(model), inputs=x, count=count, outputs=outputs,
            messages=messages,
        )  # fmt: skip
        if p.substitute == "count":
            document["count"] = count - 1
        return document

    def attempt(
        self, model: nn.Module, circuit: Entry, images: np.ndarray, decoys: np.ndarray
    ) -> dict[str, Any]:
        """Forge and hand the document to the verifier (its own circuit and images)."""
        document = self.forge(model, circuit, images, decoys)
        verifier = CircuitCompiler(circuit.params).compile(model, model.spec.input_shape)
        try:
            check_document(document, verifier, model_sha256(model), images)
        except ProofRejected as exc:
            return {"substitute": self.params.substitute, "accepted": False, "reason": exc.reason}
        return {"substitute": self.params.substitute, "accepted": True, "reason": ""}


register(
    "attacks", "statement-substitution", StatementParams,
    "verifiable inference: prove a substituted circuit, inputs, pixels, padding or count",
)(StatementSubstitution)  # fmt: skip
