"""ActiveThief (Pal et al., AAAI 2020): pool-based active learning against the oracle.

A random ``initial`` fraction of the budget is queried first; then, for ``rounds``
iterations, the thief is trained on everything labelled so far and the next batch is
selected from the unqueried pool by

* ``uncertainty``: the highest entropy of the thief's predicted distribution;
* ``k-center``: greedy farthest-first traversal in the thief's probability space
  (each pick maximises its distance to every labelled point and every earlier pick).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from vtrust.attacks.base import (
    AttackerResources,
    finish,
    train_thief,
)
from vtrust.attacks.extraction.common import ExtractionAttack, PoolParams, draw_pool
from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.models import predict_proba


@dataclass(frozen=True)
class ActiveThiefParams(PoolParams):
    strategy: Literal["uncertainty", "k-center"] = "uncertainty"
    initial: float = 0.1
    rounds: int = 5
    round_steps: int = 600

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.initial <= 1 or self.rounds < 0 or self.round_steps < 1:
            raise InputError("initial must be in (0, 1], rounds >= 0, round_steps >= 1")


def k_center_greedy(candidates: np.ndarray, labelled: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` candidates chosen farthest-first from ``labelled`` (rows = points)."""
    nearest = np.full(len(candidates), np.inf)
    for start in range(0, len(labelled), 1024):
        block = labelled[start : start + 1024]
        d = ((candidates[:, None, :] - block[None, :, :]) ** 2).sum(-1)
        nearest = np.minimum(nearest, d.min(axis=1))
    chosen = []
    for _ in range(min(k, len(candidates))):
        i = int(np.argmax(nearest))
        chosen.append(i)
        nearest = np.minimum(nearest, ((candidates - candidates[i]) ** 2).sum(-1))
        nearest[i] = -1.0
    return np.array(chosen, dtype=int)


def entropy(probs: np.ndarray) -> np.ndarray:
    return -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(axis=1)


class ActiveThief(ExtractionAttack):
    kind = "activethief"

    def __init__(self, params: ActiveThiefParams = ActiveThiefParams()) -> None:
        super().__init__(params)

    def run(self, resources: AttackerResources, *, budget=None, seed=0):
        p: ActiveThiefParams = self.params  # type: ignore[assignment]
        session, timer, rng = self.start(resources, budget, seed)
        with timer.stage("pool"):
            pool = draw_pool(p, resources, rng)
        unqueried = np.ones(len(pool), dtype=bool)
        first = rng.choice(
            len(pool), size=min(len(pool), max(1, int(p.initial * session.budget))), replace=False
        )
        with timer.stage("query"):
            session.ask(pool[first])
        unqueried[first] = False
        per_round = (session.budget - session.used) // max(p.rounds, 1)
        round_training = type(p.training)(arch=p.thief_arch, steps=p.round_steps)
        for rnd in range(p.rounds):
            if session.exhausted or not unqueried.any() or session.used == 0:
                break
            take = session.remaining if rnd == p.rounds - 1 else per_round
            with timer.stage("substitute"):
                thief = train_thief(
                    session.transfer_x,
                    session.transfer_y,
                    resources.input_shape,
                    resources.n_classes,
                    round_training,
                    seed=seed + rnd,
                    desc=f"activethief round {rnd + 1}",
                )
            with timer.stage("select"):
                candidates = np.flatnonzero(unqueried)
                probs = predict_proba(thief, pool[candidates])
                if p.strategy == "uncertainty":
                    pick = candidates[np.argsort(-entropy(probs), kind="stable")[:take]]
                else:
                    labelled = predict_proba(thief, session.transfer_x)
                    pick = candidates[k_center_greedy(probs, labelled, take)]
            with timer.stage("query"):
                session.ask(pool[pick])
            unqueried[pick] = False
        details = {"strategy": p.strategy, "source": p.source, "rounds": p.rounds}
        return finish(self.kind, session, timer, p.training, seed=seed, details=details)


register(
    "attacks",
    "activethief",
    ActiveThiefParams,
    "Pal et al.: active learning with uncertainty or k-center selection",
)(ActiveThief)
