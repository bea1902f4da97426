"""MAD — Maximizing Angular Deviation (Orekondy, Schiele & Fritz, ICLR 2020).

A thief trained on returned probabilities ``ỹ`` follows the gradient of its loss, which
for its final layer is proportional to ``(ỹ − p) ⊗ φ(x)`` (``p``: the thief's current
prediction, ``φ``: its penultimate features). MAD answers with the ``ỹ`` inside an
L1 ball of radius ``epsilon`` around the true ``y`` that turns that gradient furthest
from the one ``y`` would give. The defender does not know the thief, so ``p`` comes
from a surrogate — a randomly initialised model, as in the paper.

Restricting the attacker's gradient to the final layer makes the objective exact and
cheap: ``φ`` factors out, and the angle is that between ``ỹ − p`` and ``y − p``. As in
the paper, the objective is maximised over the simplex vertices (it is convex, so a
vertex is optimal for an unconstrained step) and the answer moves from ``y`` toward the
best vertex as far as the budget — and, for MAD-argmax, keeping the top-1 class —
allows. Every query of a batch is handled at once: one surrogate forward pass and
``O(K²)`` arithmetic per query, where the reference implementation needs ``K`` backward
passes per query.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.models import build_model
from vtrust.models.training import TrainConfig, fit_arrays, predict_proba
from vtrust.models.zoo import ARCHITECTURES
from vtrust.oracle import QueryDefense


@dataclass(frozen=True)
class MadParams:
    """MAD settings.

    Attributes:
        epsilon: L1 distortion budget per answer (0 … 2).
        keep_top1: MAD-argmax: never change the top-1 class.
        surrogate: architecture of the surrogate (randomly initialised, as in the paper).
        warm_epochs: if > 0, the surrogate is first trained that many epochs on the
            defender's data (a warm-started surrogate: a thief's model some way into its
            training, rather than at its start).
        seed: initialises the surrogate (with the deployment's seed).
    """

    epsilon: float = 1.0
    keep_top1: bool = True
    surrogate: str = "mlp"
    warm_epochs: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.epsilon <= 2:
            raise InputError(f"epsilon (an L1 distance) must be in [0, 2], got {self.epsilon}")
        if self.warm_epochs < 0:
            raise InputError(f"warm_epochs must be non-negative, got {self.warm_epochs}")
        if self.surrogate not in ARCHITECTURES:
            raise InputError(
                f"unknown surrogate architecture {self.surrogate!r}; "
                f"choose from {sorted(ARCHITECTURES)}"
            )


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


def mad_perturb(y: np.ndarray, p: np.ndarray, epsilon: float, keep_top1: bool) -> np.ndarray:
    """The MAD answers for true probabilities ``y`` (N, K) given surrogate predictions
    ``p`` (N, K): each row moved toward the simplex vertex whose reachable point turns
    the final-layer gradient ``ỹ − p`` furthest from ``y − p``."""
    n, k = y.shape
    rows = np.arange(n)
    # step toward vertex e_j allowed by the L1 budget: |e_j − y|₁ = 2 (1 − y_j)
    distance = 2.0 * (1.0 - y)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(distance > 0, np.minimum(1.0, epsilon / distance), 0.0)
    if keep_top1:
        top = y.argmax(axis=1)
        gap = y[rows, top][:, None] - y
        limit = gap / (gap + 1.0) * (1 - 1e-6)
        limit[rows, top] = 1.0
        step = np.minimum(step, limit)
    # candidates[i, j] = y_i + step_ij (e_j − y_i)
    eye = np.eye(k)
    candidates = y[:, None, :] + step[:, :, None] * (eye[None, :, :] - y[:, None, :])
    reference = _unit(y - p)[:, None, :]
    deviation = ((_unit(candidates - p[:, None, :]) - reference) ** 2).sum(axis=2)
    best = deviation.argmax(axis=1)
    return candidates[rows, best]


class Mad(QueryDefense):
    """MAD (and MAD-argmax with ``keep_top1``) as an oracle output transform."""

    name = "mad"

    def __init__(self, params: MadParams = MadParams()) -> None:
        self.params = params
        self.surrogate = None

    def bind(self, context: Any) -> None:
        self.surrogate = build_model(
            self.params.surrogate,
            context.input_shape,
            context.n_classes,
            # the surrogate steers the perturbation: unpredictable unless a run is seeded
            seed=(
                self.params.seed * 1_000_003 + context.seed
                if context.seed is not None
                else secrets.randbits(62)
            ),
        )
        if self.params.warm_epochs:
            ref = context.reference
            fit_arrays(self.surrogate, ref.x, ref.y, TrainConfig(epochs=self.params.warm_epochs),
                       desc="MAD surrogate (warm start)")  # fmt: skip
            self.surrogate.eval()

    def transform(self, client_id, x, probs):
        if self.surrogate is None:
            raise InputError("MAD needs its surrogate: deploy it with bind()")
        p = predict_proba(self.surrogate, x, batch_size=max(len(x), 1))
        return mad_perturb(probs, p, self.params.epsilon, self.params.keep_top1)


register("defenses", "mad", MadParams, "MAD: maximise the thief's gradient deviation")(Mad)
