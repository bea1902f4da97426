"""Judging query-side defenses: detection (rate, queries to detection, false positives on
benign clients, attackers split over many ids) and prediction poisoning (defender
utility against thief accuracy over each defense's strength).

The evaluator holds the victim, the test split and the defenses' settings; clients —
benign or attacking — reach the model only through an :class:`~vtrust.oracle.Oracle`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from vtrust import progress
from vtrust.catalog import Entry
from vtrust.data import Dataset, Splits
from vtrust.data.natural import natural_image_pool
from vtrust.defenses.deployment import Deployment
from vtrust.errors import InputError, QueryRefused
from vtrust.evaluation.attacks import run_entry
from vtrust.models.training import predict_proba
from vtrust.oracle import OutputMode


def benign_orders(
    test: Dataset, *, clients: int, per_client: int | None, seed: int
) -> list[tuple[str, np.ndarray]]:
    """``clients`` benign client ids, each with the test-split indices it sends, in its
    own random order without repeats: ``per_client`` of them (all if ``None``)."""
    n = len(test) if per_client is None else min(per_client, len(test))
    return [
        (f"benign-{i:03d}", np.random.default_rng([seed, i]).permutation(len(test))[:n])
        for i in range(clients)
    ]


def benign_traffic(
    test: Dataset, *, clients: int, per_client: int | None, seed: int
) -> list[tuple[str, np.ndarray]]:
    """The queries of :func:`benign_orders`' clients: (client id, images) pairs."""
    orders = benign_orders(test, clients=clients, per_client=per_client, seed=seed)
    return [(client_id, test.x[order]) for client_id, order in orders]


def false_positives(
    victim: nn.Module,
    splits: Splits,
    detectors: Sequence[Entry],
    *,
    clients: int = 100,
    per_client: int | None = None,
    batch: int = 50,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Send benign traffic through the detectors; per detector, how many clients were
    flagged and at which query."""
    oracle = Deployment(tuple(detectors)).oracle(victim, splits.victim, seed=seed)
    traffic = benign_traffic(splits.test, clients=clients, per_client=per_client, seed=seed)
    for client_id, x in progress.bar(traffic, desc="benign clients"):
        for start in range(0, len(x), batch):
            oracle.query(x[start : start + batch], client_id=client_id)
    out = {}
    for entry, defense in zip(detectors, oracle.defenses, strict=True):
        lowest = [
            st.min_w for st in getattr(defense, "states", {}).values() if getattr(st, "min_w", None)
        ]
        flagged = [
            rec.flagged_at[entry.name]
            for rec in oracle.clients.values()
            if rec.flagged_at and entry.name in rec.flagged_at
        ]
        out[entry.name] = {
            "clients": len(traffic),
            "queries_per_client": len(traffic[0][1]) if traffic else 0,
            "flagged": len(flagged),
            "rate": len(flagged) / max(len(traffic), 1),
            "flagged_at": sorted(flagged),
            "lowest_w": min(lowest) if lowest else None,  # PRADA: the benign margin
        }
    return out


def detection(
    victim: nn.Module,
    splits: Splits,
    detectors: Sequence[Entry],
    attacks: Sequence[Entry],
    *,
    seeds: Sequence[int] = (0,),
    budget: int | None = None,
) -> list[dict[str, Any]]:
    """Run every attack once per seed (one attacking client each) behind all detectors
    (in flag mode, so the attack runs to its end); per attack and detector, the share
    of attacking clients flagged and the queries each needed."""
    deployment = Deployment(tuple(detectors))
    rows = []
    for attack in attacks:
        runs = [
            run_entry(
                attack, victim, splits, deployment=deployment, budget=budget, seed=s, curve=False
            )
            for s in seeds
        ]
        for entry in detectors:
            at = [r["defenses"][entry.name]["at_query"] for r in runs]
            hits = [a for a in at if a is not None]
            rows.append(
                {
                    "attack": attack.name,
                    "detector": entry.name,
                    "clients": len(runs),
                    "detected": len(hits),
                    "rate": len(hits) / len(runs),
                    "median_queries": float(np.median(hits)) if hits else None,
                    "queries_sent": [r["queries"] for r in runs],
                    "flagged_at": at,
                    "thief_accuracy": float(np.mean([r["thief_accuracy"] for r in runs])),
                }
            )
    return rows


def split_attacker(
    victim: nn.Module,
    splits: Splits,
    detectors: Sequence[Entry],
    *,
    total: int = 1000,
    per_id: int = 4,
    benign_clients: int = 100,
    benign_per_client: int = 100,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """An attacker spreading ``total`` natural-image Knockoff queries over ids of
    ``per_id`` queries each, interleaved with benign clients' traffic. Per detector:
    the share of attacker ids flagged, attacker queries answered before the first
    flag, and benign clients flagged."""
    if per_id < 1 or total < per_id:
        raise InputError(f"need 1 ≤ per_id ≤ total, got {per_id}, {total}")
    oracle = Deployment(tuple(detectors)).oracle(victim, splits.victim, seed=seed)
    attack_x = natural_image_pool(total, splits.input_shape, seed=seed)
    attack_chunks = [
        (f"sybil-{i:04d}", attack_x[s : s + per_id]) for i, s in enumerate(range(0, total, per_id))
    ]
    benign = benign_traffic(
        splits.test, clients=benign_clients, per_client=benign_per_client, seed=seed + 1
    )
    benign_chunks = [
        (cid, x[s : s + per_id]) for cid, x in benign for s in range(0, len(x), per_id)
    ]
    rng = np.random.default_rng(seed)
    schedule = [("a", i) for i in range(len(attack_chunks))] + [
        ("b", i) for i in range(len(benign_chunks))
    ]
    order = rng.permutation(len(schedule))
    attacker_sent = 0
    first_flag: dict[str, int] = {}
    for k in progress.bar(order, desc="split attacker"):
        kind, i = schedule[k]
        client_id, x = attack_chunks[i] if kind == "a" else benign_chunks[i]
        with contextlib.suppress(QueryRefused):  # a refused id simply gets no answer
            oracle.query(x, client_id=client_id)
        if kind == "a":
            attacker_sent += len(x)
            flags = oracle.client(client_id).flagged_at or {}
            for name in flags:
                first_flag.setdefault(name, attacker_sent)

    def flagged(prefix: str, name: str) -> int:
        return sum(
            1
            for cid, rec in oracle.clients.items()
            if cid.startswith(prefix) and rec.flagged_at and name in rec.flagged_at
        )

    out = {}
    for entry in detectors:
        out[entry.name] = {
            "attacker_ids": len(attack_chunks),
            "attacker_ids_flagged": flagged("sybil-", entry.name),
            "attacker_queries_before_first_flag": first_flag.get(entry.name),
            "benign_clients": len(benign),
            "benign_flagged": flagged("benign-", entry.name),
        }
    return out


def served_to_benign(
    victim: nn.Module,
    splits: Splits,
    deployment: Deployment,
    *,
    clients: int = 100,
    per_client: int | None = None,
    batch: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """What ``clients`` benign clients (the traffic of :func:`benign_orders`) get through
    ``deployment``: how many were refused or flagged, and the top-1 accuracy of what they
    were served beside the undefended model's on the same queries (a refused query
    counts as wrong: the client got no answer)."""
    oracle = deployment.oracle(victim, splits.victim, seed=seed)
    test = splits.test
    clean = predict_proba(victim, test.x).argmax(axis=1) == test.y
    orders = benign_orders(test, clients=clients, per_client=per_client, seed=seed)
    served_right = clean_right = total = 0
    for client_id, order in progress.bar(orders, desc="benign clients"):
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            try:
                got = oracle.query(test.x[rows], client_id=client_id)
            except QueryRefused as refusal:
                got = refusal.answered if refusal.answered is not None else rows[:0]
            top1 = got if got.ndim == 1 else got.argmax(axis=1)
            served_right += int((top1 == test.y[rows[: len(top1)]]).sum())
        clean_right += int(clean[order].sum())
        total += len(order)
    records = [oracle.client(client_id) for client_id, _ in orders]
    return {
        "clients": len(orders),
        "queries_per_client": len(orders[0][1]) if orders else 0,
        "refused": sum(1 for r in records if r.refused_by is not None),
        "flagged": sum(1 for r in records if r.flagged_at),
        "accuracy_undefended": clean_right / max(total, 1),
        "accuracy_served": served_right / max(total, 1),
    }


def thieves_behind(
    victim: nn.Module,
    splits: Splits,
    defenses: Sequence[Entry],
    attacks: Sequence[Entry],
    *,
    budget: int | None = None,
    seed: int = 0,
    outputs: Sequence[OutputMode] = (OutputMode.PROBS, OutputMode.LABELS),
) -> list[dict[str, Any]]:
    """Every attack undefended and behind each defense (a preset is one), once per
    output mode: per cell the thief's fidelity and accuracy, the queries answered, when
    the defense first flagged it (over all its client ids), and how many ids it used,
    had flagged and had refused."""
    cells = [("none", Deployment())] + [(e.name, Deployment((e,))) for e in defenses]
    rows = []
    for attack in attacks:
        for name, deployment in cells:
            for mode in outputs:
                progress.stage(f"[defenses] {attack.name} behind {name}, {mode.value}")
                result = run_entry(attack, victim, splits,
                                   deployment=dataclasses.replace(deployment, output=mode),
                                   budget=budget, seed=seed, curve=False)  # fmt: skip
                flag = result["defenses"].get(name, {})
                rows.append({
                    "attack": attack.name, "defense": name, "output": mode.value,
                    "fidelity": result["fidelity"], "thief_accuracy": result["thief_accuracy"],
                    "queries": result["queries"], "budget": result["budget"],
                    "stopped": result["stopped"], "flagged_at": flag.get("at_query"),
                    "client_ids": result["client_ids"], "ids_flagged": flag.get("ids_flagged", 0),
                    "ids_refused": result["refused_ids"],
                })  # fmt: skip
    return rows


def with_strength(entry: Entry, field: str, value: Any) -> Entry:
    """A copy of a defense entry with one parameter changed (for sweeps); ``field``
    ``"a,b"`` with a tuple ``value`` changes several at once (a grid point)."""
    fields = field.split(",")
    values = tuple(value) if len(fields) > 1 else (value,)
    if len(values) != len(fields):
        raise ValueError(f"{field}: {len(fields)} parameters, {len(values)} values")
    params = dataclasses.replace(entry.params, **dict(zip(fields, values, strict=True)))
    label = ",".join(f"{f}={v}" for f, v in zip(fields, values, strict=True))
    return dataclasses.replace(entry, name=f"{entry.name}[{label}]", params=params)


def utility(victim: nn.Module, splits: Splits, deployment: Deployment, *, seed: int = 0):
    """What a benign client gets through ``deployment``: top-1 accuracy on the test split
    and mean L1 distance of the answers from the model's true probabilities."""
    oracle = Deployment(deployment.defenses).oracle(victim, splits.victim, seed=seed)
    answers = oracle.query(splits.test.x, client_id="benign")
    clean = predict_proba(victim, splits.test.x)
    return {
        "defender_accuracy": float((answers.argmax(axis=1) == splits.test.y).mean()),
        "distortion_l1": float(np.abs(answers - clean).sum(axis=1).mean()),
    }


def poisoning(
    victim: nn.Module,
    splits: Splits,
    sweeps: Sequence[tuple[Entry, str, Sequence[Any]]],
    attack: Entry,
    *,
    budget: int | None = None,
    seed: int = 0,
    modes: Sequence[OutputMode] = (OutputMode.PROBS, OutputMode.LABELS),
) -> list[dict[str, Any]]:
    """For each (defense, parameter, values) sweep and each value: defender utility and
    the accuracy and fidelity of a thief per answer mode (``modes``: by default a
    probability-trained and a label-only one). The first row is the undefended
    baseline."""
    cells: list[tuple[str, str, Any, Deployment]] = [("none", "", None, Deployment())]
    for entry, field, values in sweeps:
        for v in values:
            cells.append((entry.name, field, v, Deployment((with_strength(entry, field, v),))))
    rows = []
    for name, field, value, deployment in progress.bar(cells, desc="poisoning sweep"):
        row: dict[str, Any] = {"defense": name, "parameter": field, "value": value}
        row.update(utility(victim, splits, deployment, seed=seed))
        for mode in modes:
            result = run_entry(
                attack,
                victim,
                splits,
                deployment=dataclasses.replace(deployment, output=mode),
                budget=budget,
                seed=seed,
                curve=False,
            )
            row[f"thief_accuracy_{mode.value}"] = result["thief_accuracy"]
            row[f"fidelity_{mode.value}"] = result["fidelity"]
        rows.append(row)
    return rows


def ood_separation(victim: nn.Module, splits: Splits, *, seed: int = 0) -> dict[str, Any]:
    """How well each out-of-distribution score Adaptive Misinformation can use tells the
    test split (in distribution) from as many natural-pool images (a Knockoff thief's
    queries): the AUROC of the PPCA density the defense fits on the victim split (its
    default score) and of the victim's top-1 probability (the paper's), 1.0 = perfect."""
    from sklearn.metrics import roc_auc_score

    from vtrust.defenses.misinformation import MisinformationParams
    from vtrust.defenses.shift import DensityModel

    params = MisinformationParams()
    test = splits.test.x
    pool = natural_image_pool(len(test), splits.input_shape, seed=seed)
    x = np.concatenate([test, pool])
    inside = np.r_[np.ones(len(test)), np.zeros(len(pool))]
    density = DensityModel(splits.victim.x, params.components, params.quantile, 5, seed)
    return {
        "density": float(roc_auc_score(inside, density.score(x))),
        "confidence": float(roc_auc_score(inside, predict_proba(victim, x).max(axis=1))),
        "samples": len(x),
    }
