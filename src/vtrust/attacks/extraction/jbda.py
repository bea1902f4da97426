"""Jacobian-based dataset augmentation (Papernot et al., AsiaCCS 2017) and the JB-self
and JB-top3 variants (Juuti et al., PRADA, EuroS&P 2019; as used in Orekondy et al. 2020).

Start from a small seed set of the attacker's own samples labelled by the oracle. In
each of ``rounds`` substitute epochs: train a substitute on everything labelled so far,
then create new queries by stepping every (or a reservoir sample of ``kappa``) labelled
point along the substitute's gradient, and label them with the oracle:

* ``jbda``: ``x + λ·sign(∇ₓ CE(f(x), y))`` — away from the oracle's label, towards the
  decision boundary (the variant in PRADA's and MAD's code);
* ``jb-self``: ``x − λ·sign(∇ₓ CE(f(x), y))`` — Papernot's original direction, along the
  sign of the Jacobian row of the oracle's label;
* ``jb-top3``: for each point, a targeted I-FGSM (8 steps of 0.01 within an L∞ ball of
  λ) towards each of the substitute's three most likely other classes: three queries.

``tau`` flips the sign of λ every ``tau`` rounds (periodic step size). Every input
stays in [0, 1].

Two tactics of a thief that has read PRADA (whose alarm is a non-normal stream of
minimum distances between a client's queries): ``mix_natural`` interleaves that share
of each round's queries with in-distribution images the attacker holds, and
``shape_distances`` sets each synthetic point's step so that its distance from the
point it was made from is a draw from the attacker's own estimate of a benign stream
(the distance of each of its images to the nearest other one of the same class).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from vtrust import progress
from vtrust.attacks.base import (
    AttackerResources,
    finish,
    train_thief,
)
from vtrust.attacks.extraction.common import ExtractionAttack, ExtractionParams, draw_inputs
from vtrust.catalog import register
from vtrust.errors import InputError


@dataclass(frozen=True)
class JBDAParams(ExtractionParams):
    budget: int = 6400
    variant: Literal["jbda", "jb-self", "jb-top3"] = "jbda"
    seed_size: int = 100
    rounds: int = 6
    step: float = 0.1
    tau: int = 0
    kappa: int = 0
    substitute_steps: int = 600
    mix_natural: float = 0.0
    shape_distances: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.mix_natural < 1.0:
            raise InputError(f"mix_natural must be in [0, 1), got {self.mix_natural}")
        if self.shape_distances and self.variant == "jb-top3":
            raise InputError("shape_distances applies to the jbda and jb-self steps")
        if self.seed_size < 1 or self.rounds < 0 or self.step <= 0:
            raise InputError("seed_size must be positive, rounds non-negative, step positive")
        if self.tau < 0 or self.kappa < 0 or self.substitute_steps < 1:
            raise InputError("tau and kappa must be non-negative, substitute_steps positive")


def _input_gradient_sign(model: nn.Module, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    xt = torch.from_numpy(x).requires_grad_(True)
    loss = nn.functional.cross_entropy(model(xt), torch.from_numpy(labels), reduction="sum")
    (grad,) = torch.autograd.grad(loss, xt)
    return grad.sign().numpy()


def targeted_ifgsm(
    model: nn.Module,
    x: np.ndarray,
    targets: np.ndarray,
    eps: float,
    alpha: float = 0.01,
    iterations: int = 8,
) -> np.ndarray:
    """Targeted iterative FGSM: move ``x`` towards ``targets`` within an L∞ ball of ``eps``."""
    x0 = torch.from_numpy(x)
    adv = x0.clone()
    t = torch.from_numpy(targets)
    for _ in range(iterations):
        adv.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(adv), t, reduction="sum")
        (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = adv - alpha * grad.sign()
            adv = torch.clamp(torch.min(torch.max(adv, x0 - eps), x0 + eps), 0.0, 1.0)
    return adv.detach().numpy()


class JBDA(ExtractionAttack):
    kind = "jbda"

    def __init__(self, params: JBDAParams = JBDAParams()) -> None:
        super().__init__(params)
        self._benign_distances = np.zeros(0)  # shape_distances: estimated from the seeds

    def _augment(self, substitute, x, y, step, rng) -> np.ndarray:
        p: JBDAParams = self.params  # type: ignore[assignment]
        labels = y.argmax(axis=1)
        if p.kappa and len(x) > p.kappa:
            keep = rng.choice(len(x), size=p.kappa, replace=False)
            x, labels = x[keep], labels[keep]
        substitute.eval()
        if p.variant == "jb-top3":
            with torch.no_grad():
                logits = substitute(torch.from_numpy(x)).numpy()
            logits[np.arange(len(x)), labels] = -np.inf
            top3 = np.argsort(-logits, axis=1)[:, :3]
            new = [targeted_ifgsm(substitute, x, top3[:, j].copy(), abs(step)) for j in range(3)]
            return np.stack(new, axis=1).reshape(-1, *x.shape[1:])
        direction = 1.0 if p.variant == "jbda" else -1.0
        sign = _input_gradient_sign(substitute, x, labels)
        if p.shape_distances:  # per point: L2 length of the move = a benign-looking distance
            norms = np.sqrt((sign.reshape(len(x), -1) ** 2).sum(axis=1)).clip(min=1.0)
            lengths = rng.choice(self._benign_distances, size=len(x))
            step = np.sign(step) * (lengths / norms).reshape(-1, *([1] * (x.ndim - 1)))
        moved = x + direction * step * sign
        return np.clip(moved, 0.0, 1.0).astype(np.float32)

    @staticmethod
    def benign_distances(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Each image's L2 distance to the nearest other image of its class: the
        attacker's estimate of PRADA's stream for a benign client."""
        flat = x.reshape(len(x), -1).astype(np.float64)
        out = []
        for c in np.unique(labels):
            members = flat[labels == c]
            if len(members) < 2:
                continue
            sq = (members**2).sum(axis=1)
            d2 = sq[:, None] + sq[None, :] - 2.0 * members @ members.T
            np.fill_diagonal(d2, np.inf)
            out.append(np.sqrt(np.maximum(d2.min(axis=1), 0.0)))
        if not out:
            raise InputError("shape_distances needs two seed images of one class")
        return np.concatenate(out)

    def run(self, resources: AttackerResources, *, budget=None, seed=0):
        p: JBDAParams = self.params  # type: ignore[assignment]
        session, timer, rng = self.start(resources, budget, seed)
        with timer.stage("query"):
            session.ask(draw_inputs("attacker", p.seed_size, resources, rng))
        if p.shape_distances and session.used:
            seeds = session.transfer_x
            self._benign_distances = self.benign_distances(seeds, session.transfer_y.argmax(1))
        substitute_training = type(p.training)(arch=p.thief_arch, steps=p.substitute_steps)
        sizes = [session.used]
        for rnd in range(p.rounds):
            if session.exhausted or session.used == 0:
                break
            x, y = session.transfer_x, session.transfer_y
            with timer.stage("substitute"):
                substitute = train_thief(
                    x,
                    y,
                    resources.input_shape,
                    resources.n_classes,
                    substitute_training,
                    seed=seed + rnd,
                    desc=f"jbda round {rnd + 1}",
                )
            step = p.step * (-1.0) ** (rnd // p.tau) if p.tau else p.step
            with timer.stage("augment"):
                new = self._augment(substitute, x, y, step, rng)
                if p.mix_natural:
                    extra = int(round(p.mix_natural / (1.0 - p.mix_natural) * len(new)))
                    natural = draw_inputs("attacker", extra, resources, rng)
                    new = np.concatenate([new, natural])[rng.permutation(len(new) + extra)]
            with timer.stage("query"):
                session.ask(new)
            sizes.append(session.used)
            progress.stage(f"[{p.variant}] round {rnd + 1}: {session.used} queries")
        details = {"variant": p.variant, "rounds": len(sizes) - 1, "set_sizes": sizes}
        return finish(self.kind, session, timer, p.training, seed=seed, details=details)


register(
    "attacks",
    "jbda",
    JBDAParams,
    "Papernot et al.: Jacobian-based augmentation (jbda, jb-self, jb-top3)",
)(JBDA)
