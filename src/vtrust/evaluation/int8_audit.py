"""The audit's int8 proof: the deployed model as an integer network — imported exactly
from a fully integer ``.tflite``, else quantised post-training from a white box — a
batch of test images proved and verified, and every dishonest int8 prover of the attack
catalog run against that verifier."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vtrust import progress
from vtrust.data import Splits
from vtrust.errors import CircuitError
from vtrust.targets.base import Target

BATCH = 16  #: test images proved
CALIBRATION = 512  #: victim images calibrating a post-training quantisation


def int8_network(target: Target, splits: Splits):
    """``(QuantizedModel, how)`` for the target; CircuitError when it has no int8 circuit
    (a black box other than an integer .tflite, a layer the circuit cannot express)."""
    if target.format == "tflite":
        from vtrust.proofs.int8.litert import import_tflite

        path = target.provenance.get("path")
        if not path:
            raise CircuitError("the .tflite bytes are not at hand")
        raw = Path(path).read_bytes()
        return import_tflite(raw, str(path)).quantized, "imported exactly from the .tflite"
    from vtrust.proofs.int8.onnx_chain import quantizable_module
    from vtrust.proofs.int8.ptq import quantize_model

    calibration = splits.victim.x[:CALIBRATION]
    module = quantizable_module(target, calibration)
    return quantize_model(module, calibration), "quantised post-training (per tensor)"


def int8_proof(target: Target, splits: Splits) -> dict[str, Any]:
    """Prove and verify :data:`BATCH` test images with the target's int8 network, and
    attack that verifier with the catalog (see the module); CircuitError as
    :func:`int8_network`."""
    from vtrust.attacks.int8_cheats import attack_verifier
    from vtrust.errors import ProofRejected
    from vtrust.proofs.int8 import protocol as P

    progress.stage("[audit] int8 proof: building the integer network")
    quantized, how = int8_network(target, splits)
    network = quantized.network
    accuracy = float((quantized.predict(splits.test.x) == splits.test.y).mean())
    x = quantized.quantize_inputs(splits.test.x[:BATCH])
    progress.stage(f"[audit] int8 proof: proving and verifying {len(x)} images")
    started = time.perf_counter()
    messages = P.prove_noninteractive(network, x, network.forward(x))
    prove_s = time.perf_counter() - started
    started = time.perf_counter()
    try:
        P.verify_noninteractive(network, x, messages)
        verified, reason = True, ""
    except ProofRejected as exc:
        verified, reason = False, exc.reason
    verify_s = time.perf_counter() - started
    progress.stage("[audit] int8 proof: the catalog's dishonest provers")
    rows = [{"attack": f"{r['attack']} ({r['mode']})", "accepted": r["accepted"],
             "reason": r["reason"]}
            for r in attack_verifier(network, x[:2]) if r["applicable"]]  # fmt: skip
    return {
        "applicable": True, "verified": verified, "reason": reason, "circuit": "int8",
        "how": how, "int8_accuracy": accuracy, "batch": len(x),
        "prove_seconds": prove_s, "verify_seconds": verify_s,
        "proof_kb": P.proof_size(messages)["total"] / 1000,
        "soundness_bits": P.soundness(network, len(x))["bits"],
        "network_sha256": network.sha256(), "attacks": rows,
    }  # fmt: skip
