"""Knockoff Nets (Orekondy et al., CVPR 2019): transfer-set construction from a pool.

* ``random``: sample the pool uniformly (see :mod:`.sampling`, same procedure).
* ``adaptive``: a gradient bandit picks which part of the pool to query next. The pool's
  parts ("actions") are k-means clusters of the attacker's own images (the paper uses
  the pool's label hierarchy, which an unlabelled pool lacks). After each batch the
  reward — certainty (top-1 − top-2 margin of the answers) + diversity (distance from the
  running mean answer) + loss (thief's cross-entropy against the answers), each
  normalised by its running scale — updates the action preferences, and the thief takes
  a few online steps on everything queried so far. The final thief is trained from
  scratch on the whole transfer set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.cluster import MiniBatchKMeans
from torch import nn

from vtrust.attacks.base import AttackerResources, QuerySession, finish
from vtrust.attacks.extraction.common import ExtractionAttack, PoolParams, draw_pool
from vtrust.attacks.extraction.sampling import PoolSampling
from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.models import build_model


@dataclass(frozen=True)
class KnockoffParams(PoolParams):
    """The random strategy samples ``budget`` inputs from the source; the adaptive one
    selects from a pool (``pool_size`` natural images, or the attacker's data)."""

    strategy: Literal["random", "adaptive"] = "random"
    actions: int = 10
    batch: int = 20
    bandit_lr: float = 0.1
    online_steps: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.actions < 1 or self.batch < 1 or self.online_steps < 0 or self.bandit_lr <= 0:
            raise InputError("actions, batch and bandit_lr must be positive")


class KnockoffRandom(PoolSampling):
    kind = "knockoff"


def reward_parts(answers: np.ndarray, thief_logits: np.ndarray, mean_answer: np.ndarray):
    """Knockoff's three reward signals for one batch: certainty, diversity, loss."""
    top2 = np.sort(answers, axis=1)[:, -2:]
    certainty = float((top2[:, 1] - top2[:, 0]).mean())
    diversity = float(np.abs(answers - mean_answer).sum(axis=1).mean())
    log_q = torch.log_softmax(torch.from_numpy(thief_logits), dim=1).numpy()
    loss = float(-(answers * log_q).sum(axis=1).mean())
    return np.array([certainty, diversity, loss])


class KnockoffAdaptive(ExtractionAttack):
    kind = "knockoff"

    def run(self, resources: AttackerResources, *, budget=None, seed=0):
        p: KnockoffParams = self.params  # type: ignore[assignment]
        session, timer, rng = self.start(resources, budget, seed)
        with timer.stage("pool"):
            pool = draw_pool(p, resources, rng)
            flat = pool.reshape(len(pool), -1)
            n_actions = min(p.actions, len(pool))
            clusters = MiniBatchKMeans(n_actions, random_state=seed, n_init=3).fit_predict(flat)
            members = [
                list(rng.permutation(np.flatnonzero(clusters == a))) for a in range(n_actions)
            ]
        preferences = np.zeros(n_actions)
        baseline, scale = 0.0, np.ones(3)
        mean_answer = np.full(resources.n_classes, 1.0 / resources.n_classes)
        thief = build_model(p.thief_arch, resources.input_shape, resources.n_classes, seed=seed)
        optimizer = torch.optim.Adam(thief.parameters(), lr=1e-3)
        pulls = np.zeros(n_actions, dtype=int)
        step = 0
        while not session.exhausted and any(members):
            policy = np.exp(preferences - preferences.max())
            policy[[not m for m in members]] = 0.0
            policy /= policy.sum()
            action = int(rng.choice(n_actions, p=policy))
            take = min(p.batch, session.remaining, len(members[action]))
            chosen = [members[action].pop() for _ in range(take)]
            with timer.stage("query"):
                answers = session.ask(pool[chosen])
            if len(answers) == 0:
                break
            pulls[action] += 1
            step += 1
            with timer.stage("bandit"):
                x_t = torch.from_numpy(pool[chosen][: len(answers)])
                with torch.no_grad():
                    logits = thief.eval()(x_t).numpy().astype(np.float64)
                parts = reward_parts(answers.astype(np.float64), logits, mean_answer)
                scale += (np.abs(parts) - scale) / step  # running mean of each signal
                reward = float((parts / np.maximum(scale, 1e-8)).sum())
                mean_answer = 0.9 * mean_answer + 0.1 * answers.mean(axis=0)
                baseline += (reward - baseline) / step
                grad = -policy * (reward - baseline)
                grad[action] += reward - baseline
                preferences += p.bandit_lr * grad
            with timer.stage("online"):
                self._online_update(thief, optimizer, session, p.online_steps, rng)
        details = {"strategy": "adaptive", "source": p.source, "pulls": pulls.tolist()}
        return finish(self.kind, session, timer, p.training, seed=seed, details=details)

    @staticmethod
    def _online_update(thief: nn.Module, optimizer, session: QuerySession, steps: int, rng):
        x, y = session.transfer_x, session.transfer_y
        thief.train()
        for _ in range(steps):
            idx = rng.choice(len(x), size=min(64, len(x)), replace=False)
            logits = thief(torch.from_numpy(x[idx]))
            loss = nn.functional.cross_entropy(logits, torch.from_numpy(y[idx]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        thief.eval()


class Knockoff(ExtractionAttack):
    """Knockoff Nets with the strategy named in its parameters."""

    kind = "knockoff"

    def __init__(self, params: KnockoffParams = KnockoffParams()) -> None:
        super().__init__(params)
        strategy = KnockoffAdaptive if params.strategy == "adaptive" else KnockoffRandom
        self._impl = strategy(params)

    def run(self, resources, *, budget=None, seed=0):
        return self._impl.run(resources, budget=budget, seed=seed)


register(
    "attacks",
    "knockoff",
    KnockoffParams,
    "Knockoff Nets: random or adaptive (bandit) sampling of a pool",
)(Knockoff)
