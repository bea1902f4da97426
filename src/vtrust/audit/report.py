"""Auditing one model file as it would be deployed.

* **Extraction**: each audit attack runs against the deployment (the given defenses) at
  a query budget; its budget curve gives the queries needed to reach 90 % fidelity (or
  "not within the budget"). PRADA and the shift detector watch every attack in flag mode
  and report whether, and after how many queries, they would have caught it.
* **Watermark**: with a key, the ownership test's decision and p-value.
* **Verifiable inference**: for a polynomial (``quad``) network, a batch is proved and
  verified with the ``quad-digits``-style circuit, and every ``statement-substitution``
  attack of the catalog (a prover proving another circuit, other inputs, invalid pixels
  or padding, an edited count) is tried against the verifier; other architectures are
  reported as not provable by the SafetyNets construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vtrust import progress
from vtrust.attacks.evaluation import run_extraction
from vtrust.catalog import load_entry
from vtrust.defenses.deployment import Deployment
from vtrust.models import load_with_splits

AUDIT_ATTACKS = ("random-uniform-2k", "jbda", "knockoff-attacker-400", "line-search-2k")
WATCHERS = ("prada", "shift")
FIDELITY_GOAL = 0.9


def queries_to(curve: list[dict[str, float]], goal: float) -> int | None:
    """The first budget on the curve whose thief reaches ``goal`` fidelity."""
    for point in curve:
        if point["fidelity"] >= goal:
            return int(point["queries"])
    return None


def audit_model(
    model_file: Path,
    *,
    defenses: tuple[str, ...] = (),
    key_file: Path | None = None,
    budget: int = 1000,
    attacks: tuple[str, ...] = AUDIT_ATTACKS,
    seed: int | None = 0,
    data: str | None = None,
) -> dict[str, Any]:
    """Audit ``model_file`` (its recorded data, or the dataset spec ``data``)."""
    loaded, splits = load_with_splits(model_file, data)
    model = loaded.model
    model.eval()
    watchers = tuple(w for w in WATCHERS if w not in defenses)
    deployment = Deployment.of([*defenses, *watchers])
    rows = []
    for name in attacks:
        progress.stage(f"[audit] {name} against the deployment ({budget} queries)")
        summary, _ = run_extraction(load_entry("attacks", name).build(), model, splits,
                                    deployment=deployment, budget=budget, seed=seed)  # fmt: skip
        rows.append({
            "attack": name,
            "queries": summary["queries"],
            "fidelity": summary["fidelity"],
            "thief_accuracy": summary["thief_accuracy"],
            "queries_to_90_fidelity": queries_to(summary["curve"], FIDELITY_GOAL),
            "caught_by": {n: f for n, f in summary["defenses"].items() if n in WATCHERS},
            "stopped": summary["stopped"],
        })  # fmt: skip
    result: dict[str, Any] = {
        "model": str(model_file),
        "architecture": model.spec.name,
        "defenses": list(defenses),
        "budget": budget,
        "extraction": rows,
        "watermark": _watermark(model, splits, key_file),
        "proof": _proof(model, splits, seed or 0),
    }
    return result


def _watermark(model, splits, key_file: Path | None) -> dict[str, Any] | None:
    if key_file is None:
        return None
    from vtrust.watermark.keys import load_key
    from vtrust.watermark.robustness import verify

    progress.stage("[audit] watermark verification")
    return verify(model, load_key(key_file), splits, fpr=1e-6).to_json()


def _proof(model, splits, seed: int) -> dict[str, Any]:
    if model.spec.name != "quad":
        reason = "only polynomial (quad) networks compile to SafetyNets circuits"
        return {"applicable": False, "reason": reason}
    from vtrust.errors import CircuitError, ProofRejected
    from vtrust.proofs import field as F
    from vtrust.proofs.protocol import PreparedVerifier, prove_noninteractive, verify_noninteractive
    from vtrust.proofs.quantize import compile_network, quantize_inputs

    progress.stage("[audit] proving and verifying a batch")
    name = "quad-digits" if splits.input_shape[1] <= 8 else "quad-mnist"
    params = load_entry("circuits", name).params
    try:
        compiled = compile_network(model, splits.input_shape, params.spec, params.batch)
    except CircuitError as exc:
        return {"applicable": True, "verified": False, "circuit": name, "reason": str(exc)}
    circuit = compiled.circuit
    images = splits.test.x[: circuit.batch]
    x = circuit.pad_inputs(F.elements(quantize_inputs(images, compiled.spec)))
    outputs, messages = prove_noninteractive(circuit, x)
    try:
        verify_noninteractive(PreparedVerifier.prepare(circuit), x, outputs, messages)
    except ProofRejected as exc:
        return {"applicable": True, "verified": False, "circuit": name, "reason": exc.reason}
    return {"applicable": True, "verified": True, "circuit": name, "batch": len(images),
            "bound_bits": max(compiled.bound_bits),
            "substitutions": _substitutions(model, splits, name)}  # fmt: skip


def _substitutions(model, splits, circuit_name: str) -> list[dict[str, Any]]:
    """Each statement-substitution attack of the catalog against the verifier."""
    from vtrust.catalog import list_entries
    from vtrust.errors import CircuitError

    entry = load_entry("circuits", circuit_name)
    images, decoys = splits.test.x[:16], splits.test.x[16:32]
    rows = []
    for attack in list_entries("attacks"):
        if attack.kind != "statement-substitution":
            continue
        progress.stage(f"[audit] {attack.name}: a prover's substituted statement")
        try:
            row = attack.build().attempt(model, entry, images, decoys)
        except CircuitError as exc:  # e.g. the coarser circuit cannot hold the values
            row = {"substitute": attack.params.substitute, "accepted": False,
                   "reason": f"the prover cannot even compile it: {exc}"}  # fmt: skip
        rows.append({"attack": attack.name, **row})
    return rows
