"""Proof files: versioned, self-describing JSON.

A proof file states what was proved — the field, the protocol (``fused`` or
``layered``), the circuit description and the hash of the circuit compiled from it, the
model's hash, the batch shape, the (quantised) inputs and the claimed outputs — and
carries the Fiat–Shamir prover messages. Reading trusts
nothing in the file: sizes, types, lengths and ranges are checked against the circuit
the verifier compiled itself, and every problem is a :class:`ProofRejected`. The file's
circuit entry (name, description, parameters) is the prover's label: the verifier
compiles its own circuit and only compares hashes. Inputs must be quantised pixels
(0..2^input_bits − 1) and every padding row and column zero.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from vtrust._io import atomic_write_text, parse_json
from vtrust.errors import InputError, ProofRejected
from vtrust.proofs import field as F
from vtrust.proofs.circuit import Circuit
from vtrust.proofs.protocol import PROTOCOLS, message_kinds

FORMAT = "vtrust-proof"
# 2: inputs/outputs absorbed compactly; 3: protocol named, square rounds top-down;
# 4: the count is bound in the statement; 5: challenges, claims and round values in
# F_{p^2} (each such value is two integers, real part first)
VERSION = 5
FIELD = "2^61-1"


def proof_document(
    *,
    circuit: Circuit,
    circuit_entry: dict[str, Any],
    model_sha256: str,
    inputs: np.ndarray,
    count: int,
    outputs: np.ndarray,
    messages: list[list[int]],
    protocol: str = "fused",
) -> dict[str, Any]:
    """The JSON document of a Fiat–Shamir proof (``inputs``/``outputs`` padded)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "field": FIELD,
        "mode": "fiat-shamir",
        "protocol": protocol,
        "circuit": circuit_entry,
        "circuit_sha256": circuit.sha256(),
        "model_sha256": model_sha256,
        "batch": circuit.batch,
        "count": int(count),
        "inputs": np.asarray(inputs, dtype=np.uint64).tolist(),
        "outputs": np.asarray(outputs, dtype=np.uint64).tolist(),
        "messages": [[int(v) for v in m] for m in messages],
    }


def write_proof(path: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    """Write atomically (a temp file renamed into place)."""
    return atomic_write_text(path, json.dumps(document, separators=(",", ":")))


def read_document(
    path: str | os.PathLike[str], framing: dict[str, Any], *, max_bytes: int
) -> dict[str, Any]:
    """A proof file's JSON object with its ``framing`` fields (format, version, field …)
    checked exactly; ProofRejected for anything unreadable or other, InputError for a
    missing file (bad input, not a rejected proof). Shared by every proof format."""
    try:
        size = Path(path).stat().st_size
        if size > max_bytes:
            raise ProofRejected(f"proof file is {size} bytes, more than {max_bytes}")
        document = parse_json(Path(path).read_text(encoding="utf-8"))
    except ProofRejected:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such proof file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a proof file") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProofRejected(f"unreadable proof file ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise ProofRejected("a proof file holds one JSON object")
    for key, want in framing.items():
        if document.get(key) != want or type(document.get(key)) is not type(want):
            raise ProofRejected(f"{key} must be {want!r}")
    return document


def read_header(path: str | os.PathLike[str], *, max_bytes: int = 1 << 30) -> dict[str, Any]:
    """Parse a proof file and check its framing; the document (contents unchecked).
    A missing file is bad input (:class:`InputError`), not a rejected proof."""
    framing = {"format": FORMAT, "version": VERSION, "field": FIELD}
    document = read_document(path, framing, max_bytes=max_bytes)
    if document.get("mode") != "fiat-shamir":
        raise ProofRejected("only Fiat–Shamir proofs are stored in files")
    if document.get("protocol") not in PROTOCOLS:
        raise ProofRejected(f"protocol must be one of {', '.join(PROTOCOLS)}")
    if not isinstance(document.get("circuit"), dict):
        raise ProofRejected("the circuit description is missing")
    return document


def _matrix(value: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    if not isinstance(value, list) or len(value) != shape[0]:
        raise ProofRejected(f"{what} must have {shape[0]} rows")
    out = np.zeros(shape, dtype=np.uint64)
    for i, row in enumerate(value):
        if not isinstance(row, list) or len(row) != shape[1]:
            raise ProofRejected(f"{what} rows must have {shape[1]} values")
        for j, v in enumerate(row):
            if type(v) is not int or not 0 <= v < F.P:
                raise ProofRejected(f"{what}[{i}][{j}] is not a field element")
            out[i, j] = v
    return out


def parse_statement(
    document: dict[str, Any], circuit: Circuit, model_sha256: str, *, input_max: int
):
    """Inputs, outputs, message list and real batch size, checked against ``circuit``
    (``input_max``: the largest quantised pixel value of the verifier's circuit)."""
    if document.get("circuit_sha256") != circuit.sha256():
        raise ProofRejected("the proof is for a different circuit")
    if document.get("model_sha256") != model_sha256:
        raise ProofRejected("the proof is for a different model")
    if document.get("batch") != circuit.batch or type(document.get("batch")) is not int:
        raise ProofRejected(f"batch must be {circuit.batch}")
    count = document.get("count")
    if type(count) is not int or not 1 <= count <= circuit.batch:
        raise ProofRejected(f"count must be in 1..{circuit.batch}")
    inputs = _matrix(document.get("inputs"), (circuit.batch, circuit.input_width), "inputs")
    if int(inputs.max()) > input_max:
        raise ProofRejected(f"inputs must be quantised pixels in 0..{input_max}")
    if inputs[count:].any() or inputs[:, circuit.n_inputs :].any():
        raise ProofRejected("padding inputs (beyond count, or beyond the image) must be zero")
    outputs = _matrix(document.get("outputs"), (circuit.batch, circuit.output_width), "outputs")
    messages = document.get("messages")
    kinds = message_kinds(circuit, document["protocol"])
    if not isinstance(messages, list) or len(messages) != len(kinds):
        raise ProofRejected(f"a proof for this circuit has {len(kinds)} messages")
    return inputs, outputs, messages, count
