"""CloudLeak (Yu et al., NDSS 2020): label-only stealing with adversarial examples near
the decision boundary as queries.

The attacker holds unlabelled images (its own in-distribution split, or the natural-image
pool). It labels a first ``seed_size`` of them through the oracle and trains a local
substitute; then, in each of ``rounds`` rounds, it takes the next batch of unlabelled
images, pushes every one of them across the substitute's nearest decision boundary — a
targeted iterative step toward the substitute's second most likely class, stopped per
image as soon as the substitute's label changes (at most ``eps`` in L∞: the paper's
"minimally perturbed" examples, which carry the most information about where the
victim's boundary lies) — queries the oracle for their labels, and retrains. The paper's
FeatureFool crafts the perturbation in a pretrained feature space; vtrust's substitute
is trained from scratch, so the margin is taken on its logits. The final thief trains on
every labelled query (labels only: the paper's threat model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from vtrust import progress
from vtrust.attacks.base import AttackerResources, finish, train_thief
from vtrust.attacks.extraction.common import ExtractionAttack, ExtractionParams, draw_inputs
from vtrust.catalog import register
from vtrust.errors import InputError


@dataclass(frozen=True)
class CloudLeakParams(ExtractionParams):
    """Attributes:
    source: the unlabelled images perturbed (``attacker`` split or ``natural`` pool).
    seed_size: images labelled before the first substitute.
    rounds: substitute / perturb / query rounds sharing the rest of the budget.
    eps: L∞ bound of a perturbation; step, iterations: its iterative steps.
    substitute_steps: training steps of each round's substitute.
    """

    budget: int = 2000
    labels_only: bool = True
    source: Literal["attacker", "natural"] = "attacker"
    seed_size: int = 100
    rounds: int = 4
    eps: float = 0.25
    step: float = 0.02
    iterations: int = 20
    substitute_steps: int = 300

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seed_size < 1 or self.rounds < 1 or self.substitute_steps < 1:
            raise InputError("seed_size, rounds and substitute_steps must be positive")
        if not 0 < self.eps <= 1 or not 0 < self.step <= self.eps or self.iterations < 1:
            raise InputError(f"need 0 < step ≤ eps ≤ 1 and iterations ≥ 1, got step "
                             f"{self.step}, eps {self.eps}, iterations "
                             f"{self.iterations}")  # fmt: skip


def to_boundary(model: nn.Module, x: np.ndarray, eps: float, step: float,
                iterations: int) -> np.ndarray:  # fmt: skip
    """Each image moved toward ``model``'s second most likely class until ``model``'s
    label changes (kept at the first step that changes it), within L∞ ``eps`` of where
    it started; images that never cross end at the ball's furthest step."""
    model.eval()
    x0 = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.no_grad():
        logits = model(x0)
    start = logits.argmax(1)
    target = logits.scatter(1, start[:, None], float("-inf")).argmax(1)
    adv, done = x0.clone(), torch.zeros(len(x0), dtype=torch.bool)
    for _ in range(iterations):
        moving = adv.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(moving), target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, moving)
        with torch.no_grad():
            stepped = torch.clamp(moving - step * grad.sign(), x0 - eps, x0 + eps).clamp(0, 1)
            adv = torch.where(done.view(-1, *[1] * (x0.dim() - 1)), adv, stepped)
            done |= model(adv).argmax(1) != start
        if bool(done.all()):
            break
    return adv.numpy()


class CloudLeak(ExtractionAttack):
    kind = "cloudleak"

    def run(self, resources: AttackerResources, *, budget=None, seed=0):
        p: CloudLeakParams = self.params  # type: ignore[assignment]
        session, timer, rng = self.start(resources, budget, seed)
        with timer.stage("query"):
            session.ask(draw_inputs(p.source, min(p.seed_size, session.remaining), resources,
                                    rng))  # fmt: skip
        per_round = -(-session.remaining // p.rounds) if session.remaining else 0
        substitute_training = type(p.training)(arch=p.thief_arch, steps=p.substitute_steps)
        crossed = []
        for rnd in range(p.rounds):
            if session.exhausted or session.used == 0 or session.stopped:
                break
            with timer.stage("substitute"):
                substitute = train_thief(session.transfer_x, session.transfer_y,
                                         resources.input_shape, resources.n_classes,
                                         substitute_training, seed=seed + rnd,
                                         desc=f"cloudleak round {rnd + 1}")  # fmt: skip
            with timer.stage("perturb"):
                fresh = draw_inputs(p.source, min(per_round, session.remaining), resources, rng)
                adv = to_boundary(substitute, fresh, p.eps, p.step, p.iterations)
                with torch.no_grad():
                    moved = substitute(torch.from_numpy(adv)).argmax(1).numpy()
                    before = substitute(torch.from_numpy(fresh)).argmax(1).numpy()
                crossed.append(float((moved != before).mean()))
            with timer.stage("query"):
                session.ask(adv)
            progress.stage(f"[cloudleak] round {rnd + 1}: {session.used} queries")
        details = {"rounds": len(crossed), "crossed_share": crossed}
        return finish(self.kind, session, timer, p.training, seed=seed, details=details)


register("attacks", "cloudleak", CloudLeakParams,
         "Yu et al.: label-only queries pushed across the substitute's boundary")(
    CloudLeak)  # fmt: skip
