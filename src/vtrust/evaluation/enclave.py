"""Evaluating split execution: what a thief gains from the outside part, how often
tampering is caught, and throughput under the cost model."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from vtrust import progress
from vtrust.attacks.direct import DirectStealing, DirectStealingParams
from vtrust.data import Dataset
from vtrust.enclave.costs import CostModel
from vtrust.enclave.slalom import SlalomNetwork, TamperingHost
from vtrust.enclave.split import SplitModel, SplitSpec, inside_layers, units
from vtrust.errors import TamperDetected


def stealing_curve(
    model: nn.Module,
    attacker: Dataset,
    test: Dataset,
    *,
    fractions: list[float],
    epochs: int = 30,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """For every partition ``first:K`` and ``last:K`` (K = 0 … all units): the thief
    holds the outside layers, re-initialises the inside ones and fine-tunes with each
    fraction of the attacker split; one row per (partition, fraction)."""
    n = len(units(model))
    specs = [SplitSpec("first", k) for k in range(n + 1)]
    specs += [SplitSpec("last", k) for k in range(1, n)]
    rows = []
    for spec in progress.bar(specs, desc="stealing curve"):
        missing = inside_layers(model, spec)
        attack = DirectStealing(
            DirectStealingParams(fractions=fractions, missing_layers=missing, epochs=epochs)
        )
        for row in attack.run(model, attacker, test, victim=model, seed=seed):
            rows.append({"split": str(spec), "inside_units": spec.k, **row})
    return rows


def tamper_detection(
    net: SlalomNetwork, x: torch.Tensor, *, trials: int, seed: int = 0
) -> dict[str, Any]:
    """Change one element of one layer's outsourced result ``trials`` times (random
    layer, position and nonzero offset) and count how often the enclave notices."""
    rng = np.random.default_rng(seed)
    detected = 0
    for _ in progress.bar(range(trials), desc="tampering"):
        layer = int(rng.integers(len(net.ops)))
        host = TamperingHost(
            net.ops, layer, int(rng.integers(1 << 30)), int(rng.integers(1, 1 << 24))
        )
        if net.pads_left() == 0:
            net.precompute(1, len(x))
        try:
            net.forward(x, host)
        except TamperDetected:
            detected += 1
    return {"trials": trials, "detected": detected, "rate": detected / trials,
            "error_bound": net.error_bound}  # fmt: skip


def throughput(
    model: nn.Module,
    calibration: torch.Tensor,
    x: torch.Tensor,
    *,
    cost: CostModel,
    repeats: int = 5,
) -> list[dict[str, Any]]:
    """Images per modelled second for no enclave, all inside (MLCapsule), each
    ``first:K``/``last:K`` partition and Slalom, with the ledger of one batch."""
    n = len(units(model))
    specs = ["none", "all", *[f"first:{k}" for k in range(1, n)],
             *[f"last:{k}" for k in range(1, n)]]  # fmt: skip
    rows = []
    for text in specs:
        split = SplitModel(model, SplitSpec.parse(text), cost=cost)
        split.forward(x)  # warm-up
        rows.append(_timed(text, split, lambda s=split: s.forward(x), len(x), repeats))
    net = SlalomNetwork(model, calibration, cost=cost)  # secrets from the CSPRNG
    net.precompute(repeats + 1, len(x))
    offline_per_batch = net.offline_seconds / (repeats + 1)
    net.forward(x)
    row = _timed("slalom", net, lambda: net.forward(x), len(x), repeats)
    row["offline_s_per_batch"] = offline_per_batch
    rows.append(row)
    base = next(r for r in rows if r["split"] == "all")["seconds_per_batch"]
    for r in rows:
        r["speedup_over_all_inside"] = base / r["seconds_per_batch"]
    return rows


def _timed(name: str, runner, call, batch: int, repeats: int) -> dict[str, Any]:
    ledger = runner.enclave.ledger if runner.enclave is not None else None
    start_total = runner.modelled_seconds()
    start = ledger.to_json() if ledger else {}
    for _ in range(repeats):
        call()
    seconds = (runner.modelled_seconds() - start_total) / repeats
    per_batch = {k: (v - start[k]) / repeats for k, v in ledger.to_json().items()} if ledger else {}
    return {
        "split": name,
        "seconds_per_batch": seconds,
        "images_per_second": batch / seconds if seconds > 0 else float("inf"),
        "ledger_per_batch": per_batch,
    }
