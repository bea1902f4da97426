"""Auditing one model, of any format, as it would be deployed.

* **Extraction** (every target: it needs only the black box): each audit attack runs
  against the deployment (the given defenses; by default the ``default`` preset, the
  deployment vtrust recommends — ``none`` for the bare model) at a query budget; its
  budget curve gives the queries needed to reach 90 % fidelity (or "not within the
  budget"). PRADA and the shift detector watch every attack in flag mode and report
  whether, and after how many queries, they would have caught it; the extraction
  warning reports the attacker's stealing progress (the share of the model's decision
  regions its queries reached, :mod:`vtrust.defenses.coverage`).
* **Watermark** (with a key): the ownership test's decision and p-value — a dynamic key
  through the black box, a static key only with white-box weights.
* **Verifiable inference**: for a polynomial (``quad``) vtrust network, a batch is proved
  and verified, and every ``statement-substitution`` attack of the catalog (a prover
  proving another circuit, other inputs, invalid pixels or padding, an edited count) is
  tried against the verifier.

Every part that cannot run on the target is listed under ``skipped`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vtrust import progress
from vtrust.catalog import load_entry
from vtrust.data import Splits
from vtrust.defenses.deployment import Deployment
from vtrust.evaluation.attacks import run_extraction
from vtrust.models import ZooModel, accuracy
from vtrust.targets.base import Target

AUDIT_ATTACKS = ("random-uniform-2k", "jbda", "knockoff-attacker-400", "line-search-2k")
QUICK_ATTACKS = ("random-uniform-2k", "knockoff-attacker-400")
WATCHERS = ("prada", "shift", "extraction-warning")
DEFAULT_DEFENSES = ("default",)  # the recommended preset (defenses/default.toml)
NO_DEFENSE = "none"
FIDELITY_GOAL = 0.9


@dataclass(frozen=True)
class AuditPlan:
    """What an audit runs: attacks, their query budget, the budget-curve points, and the
    optimizer steps of every thief the attacks train (their catalog entries' own, usually
    1,500, would make an audit of an MNIST-sized model take over ten minutes on 2 cores;
    fewer steps make a weaker thief, so the audit's fidelities are lower bounds)."""

    attacks: tuple[str, ...] = AUDIT_ATTACKS
    budget: int = 1000
    curve_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    thief_steps: int = 600

    @classmethod
    def quick(cls, attacks: tuple[str, ...] = (), budget: int | None = None) -> AuditPlan:
        """A smoke audit (≤ 1 min on an MNIST-sized CNN): two attacks, 300 queries, a
        two-point curve, 250-step thieves."""
        return cls(attacks or QUICK_ATTACKS, budget or 300, (0.5, 1.0), 250)

    def attack(self, name: str):
        """The catalog attack ``name`` with this plan's thief (and substitute) steps."""
        entry = load_entry("attacks", name)
        changes = {"thief_steps": self.thief_steps}
        if hasattr(entry.params, "substitute_steps"):
            changes["substitute_steps"] = min(entry.params.substitute_steps, self.thief_steps)
        return replace(entry, params=replace(entry.params, **changes)).build()


def queries_to(curve: list[dict[str, float]], goal: float) -> int | None:
    """The first budget on the curve whose thief reaches ``goal`` fidelity."""
    for point in curve:
        if point["fidelity"] >= goal:
            return int(point["queries"])
    return None


def audit_target(
    target: Target,
    splits: Splits,
    *,
    plan: AuditPlan = AuditPlan(),
    defenses: tuple[str, ...] = DEFAULT_DEFENSES,
    key_file: Path | None = None,
    seed: int | None = 0,
) -> dict[str, Any]:
    """Audit ``target`` on ``splits`` deployed behind ``defenses`` (catalog names;
    ``("none",)`` or ``()`` for the bare model); a JSON-ready report (see the module
    docstring)."""
    defenses = tuple(d for d in defenses if d != NO_DEFENSE)
    watchers = tuple(w for w in WATCHERS if w not in defenses)
    deployment = Deployment.of([*defenses, *watchers])
    skipped: dict[str, str] = {}
    rows = []
    for name in plan.attacks:
        progress.stage(f"[audit] {name} against the deployment ({plan.budget} queries)")
        summary, _ = run_extraction(
            plan.attack(name),
            target,
            splits,
            deployment=deployment,
            budget=plan.budget,
            seed=seed,
            curve_fractions=plan.curve_fractions,
        )
        rows.append(
            {
                "attack": name,
                "queries": summary["queries"],
                "fidelity": summary["fidelity"],
                "thief_accuracy": summary["thief_accuracy"],
                "queries_to_90_fidelity": queries_to(summary["curve"], FIDELITY_GOAL),
                "curve": summary["curve"],
                "caught_by": {n: f for n, f in summary["defenses"].items() if n in WATCHERS},
                "stealing_progress": summary.get("stealing_progress", {}).get("extraction-warning"),
                "stopped": summary["stopped"],
            }
        )
    watermark = _watermark(target, splits, key_file, skipped)
    proof = _proof(target, splits, skipped)
    module = target.module
    return {
        "model": target.provenance.get("path"),
        "target": {k: v for k, v in target.describe().items() if k != "metadata"},
        "architecture": module.spec.name if isinstance(module, ZooModel) else target.format,
        "accuracy": accuracy(target, splits.test),
        "data": {
            "spec": splits.spec,
            "sha256": splits.digest,
            "user_splits": splits.user_splits,
            "test_samples": len(splits.test),
        },
        "defenses": list(defenses),
        "budget": plan.budget,
        "thief_steps": plan.thief_steps,
        "extraction": rows,
        "watermark": watermark,
        "proof": proof,
        "ran": [
            "extraction",
            *(["watermark"] if watermark else []),
            *(["proof"] if proof.get("applicable") else []),
        ],
        "skipped": skipped,
    }


def _watermark(target, splits, key_file: Path | None, skipped) -> dict[str, Any] | None:
    if key_file is None:
        skipped["watermark"] = "no key given (--key)"
        return None
    from vtrust.watermark.keys import load_key
    from vtrust.watermark.ownership import verify

    key = load_key(key_file)
    if key.static is not None and not target.white_box:
        skipped["watermark"] = (
            f"static watermark: needs white-box weights ({target.white_box_reason})"
        )
        return None
    progress.stage("[audit] watermark verification")
    return verify(target, key, splits, fpr=1e-6).to_json()


def _proof(target: Target, splits: Splits, skipped) -> dict[str, Any]:
    """A quad zoo network: its SafetyNets circuit; any other model: its int8 network
    (:mod:`vtrust.evaluation.int8_audit`); else skipped, saying why."""
    from vtrust.errors import CircuitError, InputError
    from vtrust.evaluation.int8_audit import int8_proof

    module = target.module
    if isinstance(module, ZooModel) and module.spec.name == "quad":
        return _prove(module, splits)
    try:
        return int8_proof(target, splits)
    except (CircuitError, InputError) as exc:
        reason = f"no int8 circuit: {exc}"
    skipped["proof"] = reason
    return {"applicable": False, "reason": reason}


def _prove(model: ZooModel, splits: Splits) -> dict[str, Any]:
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
    return {
        "applicable": True,
        "verified": True,
        "circuit": name,
        "batch": len(images),
        "bound_bits": max(compiled.bound_bits),
        "substitutions": _substitutions(model, splits, name),
    }


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
            row = {
                "substitute": attack.params.substitute,
                "accepted": False,
                "reason": f"the prover cannot even compile it: {exc}",
            }
        rows.append({"attack": attack.name, **row})
    return rows


def verdict_lines(result: dict[str, Any]) -> list[str]:
    """The watermark and proof verdicts of an audit as text lines (indented: the
    attacks on the verifier under the proof)."""
    lines = []
    mark = result["watermark"]
    if mark is not None:
        owned = "owned" if mark["owned"] else "NOT verified"
        lines.append(f"watermark: {owned} (p = {mark['p_value']:.3g})")
    proof = result["proof"]
    if proof.get("applicable"):
        lines.append(
            "proof: " + ("verifies" if proof["verified"] else f"FAILS ({proof['reason']})")
        )
        if proof.get("circuit") == "int8":
            lines[-1] += (f" — int8 network {proof['how']}, accuracy {proof['int8_accuracy']:.4f}; "
                          f"{proof['batch']} images in {proof['prove_seconds'] * 1000:.0f} ms, "
                          f"verified in {proof['verify_seconds'] * 1000:.0f} ms, "
                          f"{proof['proof_kb']:.0f} KB")  # fmt: skip
        for row in [*proof.get("substitutions", []), *proof.get("attacks", [])]:
            verdict = "ACCEPTED — the verifier is fooled" if row["accepted"] else "rejected"
            lines.append(f"  {row['attack']:<22} {verdict}: {row['reason']}")
    return lines


def audit_report(result: dict[str, Any]):
    """The audit as a :class:`vtrust.report.Report`: tables, skipped parts, a plot of
    every attack's fidelity against its queries."""
    from vtrust.report import Report, line_plot

    target = result["target"]
    report = Report(f"Audit of {result['model']}")
    report.add_text(
        f"{target['format']} model, {'white' if target['white_box'] else 'black'} box, input "
        f"{target['input']['shape']} ({target['input']['layout']}), {target['n_classes']} "
        f"classes, SHA-256 `{target.get('sha256', '?')[:16]}…`; test accuracy "
        f"{result['accuracy']:.4f} on `{result['data']['spec']}` "
        f"({result['data']['test_samples']} samples). Deployed with "
        f"{', '.join(result['defenses']) or 'no defenses'}; {result['budget']} queries per "
        f"attack, thieves trained for {result['thief_steps']} steps."
    )
    report.add_table(
        "Extraction",
        [
            "attack",
            "fidelity",
            "thief accuracy",
            "queries to 90 %",
            "stealing progress",
            "caught by",
        ],
        [
            [
                r["attack"],
                r["fidelity"],
                r["thief_accuracy"],
                r["queries_to_90_fidelity"] or "never",
                "—" if r.get("stealing_progress") is None else f"{r['stealing_progress']:.2f}",
                ", ".join(
                    f"{n} @ {f['at_query']}" for n, f in r["caught_by"].items() if f["flagged"]
                )
                or "—",
            ]
            for r in result["extraction"]
        ],
    )
    series = {
        r["attack"]: ([p["queries"] for p in r["curve"]], [p["fidelity"] for p in r["curve"]])
        for r in result["extraction"]
        if r["curve"]
    }
    if series:
        report.add_figure(
            "fidelity.png",
            line_plot(
                series,
                title="Thief fidelity vs queries",
                xlabel="queries",
                ylabel="fidelity",
                logx=True,
            ),
            "Fidelity of each attack's thief against the queries it spent",
        )
    for line in verdict_lines(result):
        report.add_text(line.strip())
    report.add_table("Skipped", ["part", "why"], sorted(result["skipped"].items()))
    return report
