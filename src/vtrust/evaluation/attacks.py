"""Judging attacks: thief accuracy and fidelity, budget curves, strength sweeps, and the
one-call runner behind ``vtrust attack run``.

The evaluator (unlike the attacker) holds the victim and the test split.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
from torch import nn

from vtrust import progress
from vtrust.attacks.base import AttackerResources, ExtractionResult
from vtrust.attacks.direct import DirectStealing
from vtrust.attacks.extraction.common import ExtractionAttack
from vtrust.attacks.extraction.equation import EquationSolving, centred_parameters
from vtrust.attacks.removal.common import RemovalAttack, sweep
from vtrust.catalog import Entry
from vtrust.data import Dataset, Splits
from vtrust.defenses.deployment import Deployment
from vtrust.defenses.preset import leaf_defenses
from vtrust.errors import InputError
from vtrust.models import ZooModel, accuracy, agreement
from vtrust.oracle import Oracle
from vtrust.targets.base import Target, as_target

CURVE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
UNDEFENDED = Deployment()  # probabilities, no defenses


def evaluate_thief(thief: nn.Module | None, victim: nn.Module, test: Dataset) -> dict[str, float]:
    """Thief test accuracy and fidelity (top-1 agreement with the victim on ``test``)."""
    if thief is None:
        return {"thief_accuracy": 0.0, "fidelity": 0.0}
    return {"thief_accuracy": accuracy(thief, test), "fidelity": agreement(thief, victim, test.x)}


def budget_curve(
    attack: ExtractionAttack,
    result: ExtractionResult,
    victim: nn.Module,
    test: Dataset,
    *,
    seed: int = 0,
    fractions: Sequence[float] = CURVE_FRACTIONS,
) -> list[dict[str, float]]:
    """Thief accuracy and fidelity had the attack stopped after a share of its queries.

    Every built-in attack collects its transfer set sequentially, so a prefix is exactly
    what a smaller budget would have bought; the thief for each prefix is rebuilt the way
    the attack builds its final one. The last point is the attack's own thief.
    """
    n = len(result.transfer_x)
    points = sorted({max(1, int(round(f * n))) for f in fractions if n > 0})
    rows = []
    for k in progress.bar(points, desc="budget curve"):
        if k == n and result.thief is not None:
            thief = result.thief
        else:
            shape = tuple(result.transfer_x.shape[1:])
            thief = attack.thief_from(
                result.transfer_x[:k],
                result.transfer_y[:k],
                shape,
                result.transfer_y.shape[1],
                seed=seed,
            )
        rows.append({"queries": k, **evaluate_thief(thief, victim, test)})
    return rows


def parameter_error(thief: nn.Module, victim: nn.Module) -> float:
    """Max relative error of a softmax-regression thief's class-centred parameters."""
    truth = centred_parameters(
        victim.head.weight.detach().numpy(), victim.head.bias.detach().numpy()
    )
    got = centred_parameters(thief.head.weight.detach().numpy(), thief.head.bias.detach().numpy())
    return float(np.abs(got - truth).max() / np.abs(truth).max())


def _flags(oracle: Oracle, result: ExtractionResult, defense_names: list[str],
           client_id: str) -> dict[str, Any]:  # fmt: skip
    """Per defense: whether any of the attack's client ids was flagged, at which of the
    attacker's queries (counted over all its ids) the first flag came, and how many of
    its ids were flagged."""
    ids = result.client_ids or {client_id: 0}
    out = {}
    for name in defense_names:
        at = [start + flags[name] for cid, start in ids.items()
              if name in (flags := oracle.client(cid).flagged_at or {})]  # fmt: skip
        out[name] = {"flagged": bool(at), "at_query": min(at) if at else None,
                     "ids_flagged": len(at), "ids": len(ids)}  # fmt: skip
    return out


def stealing_progress(oracle: Oracle, result: ExtractionResult, client_id: str) -> dict[str, float]:
    """Per deployed extraction warning (presets' members included): the highest
    stealing progress among the attack's client ids."""
    ids = result.client_ids or {client_id: 0}
    return {d.name: max(d.stealing_progress(cid) for cid in ids)
            for d in leaf_defenses(oracle.defenses) if hasattr(d, "stealing_progress")}  # fmt: skip


def run_extraction(
    attack: ExtractionAttack,
    victim: Target | nn.Module,
    splits: Splits,
    *,
    deployment: Deployment = UNDEFENDED,
    budget: int | None = None,
    seed: int | None = 0,
    curve: bool = True,
    curve_fractions: Sequence[float] = CURVE_FRACTIONS,
) -> tuple[dict[str, Any], ExtractionResult]:
    """Deploy ``victim`` as ``deployment`` says (defenses calibrated on the victim split),
    attack it, and judge the thief. ``seed`` seeds the attacker and the defenses' secret
    randomness (a reproducible, insecure run); None: attacker seed 0, defenses' secrets
    from a CSPRNG."""
    oracle = deployment.oracle(victim, splits.victim, seed=seed)
    seed = 0 if seed is None else seed  # the attacker's own randomness
    resources = AttackerResources(oracle, data=splits.attacker, client_id="attacker")
    result = attack.run(resources, budget=budget, seed=seed)
    progress.stage(
        f"[attack] {result.attack}: {result.queries} queries in {result.total_seconds:.1f} s"
        + (f", stopped: {result.stopped}" if result.stopped else "")
    )
    summary: dict[str, Any] = {
        "queries": result.queries,
        "budget": result.budget,
        "seconds": result.total_seconds,
        "stages": result.seconds,
        "stopped": result.stopped,
        "details": result.details,
        **evaluate_thief(result.thief, victim, splits.test),
        "defenses": _flags(oracle, result, deployment.names, resources.client_id),
        "client_ids": len(result.client_ids),
        "refused_ids": len(result.refused_ids),
    }
    if progress_figures := stealing_progress(oracle, result, resources.client_id):
        summary["stealing_progress"] = progress_figures
    if (
        isinstance(attack, EquationSolving)
        and result.thief is not None
        and getattr(getattr(victim, "spec", None), "name", None) == "softmax"
    ):
        summary["max_relative_parameter_error"] = parameter_error(result.thief, victim)
    if curve:
        started = time.perf_counter()
        summary["curve"] = budget_curve(attack, result, victim, splits.test, seed=seed,
                                        fractions=curve_fractions)  # fmt: skip
        summary["curve_seconds"] = time.perf_counter() - started
    return summary, result


def run_removal(
    attack: RemovalAttack, victim: nn.Module, splits: Splits, *, seed: int = 0
) -> dict[str, Any]:
    """Sweep ``attack`` over its strengths on a copy of ``victim``."""
    started = time.perf_counter()
    rows = sweep(attack, victim, splits.attacker, splits.test, seed=seed)
    return {
        "strength_name": attack.strength_name,
        "curve": rows,
        "thief_accuracy": rows[-1]["accuracy"],
        "fidelity": rows[-1]["fidelity"],
        "queries": 0,
        "seconds": time.perf_counter() - started,
    }


def run_direct(attack: DirectStealing, victim: nn.Module, splits: Splits, *, seed: int = 0):
    """Direct stealing of ``victim``'s weights, over the attacker-data fractions."""
    started = time.perf_counter()
    rows = attack.run(victim, splits.attacker, splits.test, victim=victim, seed=seed)
    best = rows[-1]
    return {
        "curve": rows,
        "thief_accuracy": best["finetuned_accuracy"],
        "fidelity": best.get("finetuned_fidelity", 0.0),
        "queries": 0,
        "seconds": time.perf_counter() - started,
    }


#: where the catalog's attacks on something other than the model run
ELSEWHERE = {
    "ambiguity": "it forges a watermark key; `vtrust watermark robustness` and `vtrust gate "
    "watermark` run it against the key",
    "statement-substitution": "it makes a prover prove another statement; `vtrust audit` "
    "runs it against the verifier",
    "int8-dishonest-prover": "it is a prover that cheats inside an int8 network's proof; "
    "its `attempt(network, x)` runs it against the int8 verifier",
}


def run_entry(
    entry: Entry,
    victim: Target | nn.Module,
    splits: Splits,
    *,
    deployment: Deployment = UNDEFENDED,
    budget: int | None = None,
    seed: int | None = 0,
    curve: bool = True,
    curve_fractions: Sequence[float] = CURVE_FRACTIONS,
) -> dict[str, Any]:
    """Run the attack a catalog entry configures against ``victim`` (a target of any
    format, or a torch module); a JSON-ready dict with at least ``thief_accuracy``,
    ``fidelity``, ``queries`` and ``seconds`` (``seed``: see :func:`run_extraction`;
    ``curve_fractions``: the shares of the queries an extraction's budget curve
    retrains a thief at).

    Raises:
        BlackBoxOnly: a removal or direct-stealing attack on a black-box target.
    """
    if entry.section != "attacks":
        raise InputError(f"{entry.name} is a {entry.section} entry, not an attack")
    target = as_target(victim, splits.input_shape)
    attack = entry.build()
    progress.stage(f"[attack] {entry.name} ({entry.kind}), seed {seed}")
    if deployment.defenses and not isinstance(attack, ExtractionAttack):
        raise InputError(f"query-side defenses do not apply to the white-box attack {entry.name}")
    if isinstance(attack, ExtractionAttack):
        summary, _ = run_extraction(
            attack,
            target,
            splits,
            deployment=deployment,
            budget=budget,
            seed=seed,
            curve=curve,
            curve_fractions=curve_fractions,
        )
        category = "extraction"
    elif isinstance(attack, RemovalAttack):
        module = target.require_module(f"the removal attack {entry.name}")
        summary = run_removal(attack, module, splits, seed=seed or 0)
        category = "removal"
    elif not isinstance(attack, DirectStealing):
        raise InputError(f"{entry.name} ({entry.kind}) does not attack the model alone: "
                         + ELSEWHERE.get(entry.kind, "it is run by another command"))  # fmt: skip
    else:
        module = target.require_module(f"direct stealing ({entry.name})")
        if not isinstance(module, ZooModel):
            raise InputError(f"{entry.name} retrains the model's own architecture from scratch; "
                             "it runs on vtrust zoo models only")  # fmt: skip
        summary = run_direct(attack, module, splits, seed=seed or 0)
        category = "direct"
    return {
        "attack": entry.name,
        "kind": entry.kind,
        "category": category,
        "params": asdict(entry.params),
        "seed": seed,
        "victim_accuracy": accuracy(target, splits.test),
        **summary,
    }
