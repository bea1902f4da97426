"""A data-free thief in the manner of ES Attack (Yuan et al., 2020; DNN-SYN): no
attacker data at all, only queries a generator synthesises against the thief itself.

The attacker alternates two steps for ``rounds`` rounds:

1. **Synthesis.** A generator maps noise ``z`` and a class ``c`` to an image in [0, 1];
   it is trained for ``generator_steps`` so that the *current substitute* classifies
   ``G(z, c)`` as ``c`` (cross-entropy), plus a mode-seeking term (Mao et al.: images
   of different ``z`` must differ in proportion) so it does not collapse to one image
   per class. The round's queries are fresh ``G(z, c)`` over classes drawn uniformly.
2. **Estimation.** The oracle answers them; the substitute is retrained on every answer
   so far (probabilities unless ``labels_only``).

The first round's substitute is untrained, so the first queries are the generator's
guesses at what an untrained network calls each class; each round the substitute knows
more of the victim and the generator's images move toward the victim's classes. The
final thief is the last substitute's architecture trained on every answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vtrust import progress
from vtrust.attacks.base import AttackerResources, finish, train_thief
from vtrust.attacks.extraction.common import ExtractionAttack, ExtractionParams
from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.models import build_model


@dataclass(frozen=True)
class DataFreeParams(ExtractionParams):
    """Attributes:
    rounds: synthesis / estimation rounds sharing the budget equally.
    noise_dim: length of the generator's noise input.
    generator_steps: generator updates per round (batch ``generator_batch``).
    diversity: weight of the mode-seeking term.
    substitute_steps: training steps of each round's substitute.
    """

    budget: int = 2000
    rounds: int = 10
    noise_dim: int = 32
    generator_steps: int = 60
    generator_batch: int = 64
    diversity: float = 1.0
    substitute_steps: int = 400

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.rounds, self.noise_dim, self.generator_steps, self.generator_batch,
               self.substitute_steps) < 1:  # fmt: skip
            raise InputError("rounds, noise_dim, generator steps and batch, and "
                             "substitute_steps must be positive")  # fmt: skip
        if self.diversity < 0:
            raise InputError(f"diversity must be non-negative, got {self.diversity}")


class Generator(nn.Module):
    """(noise, one-hot class) → image in [0, 1] of ``shape``."""

    def __init__(self, noise_dim: int, n_classes: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = shape
        self.n_classes = n_classes
        self.net = nn.Sequential(
            nn.Linear(noise_dim + n_classes, 256), nn.ReLU(),
            nn.Linear(256, 512), nn.ReLU(),
            nn.Linear(512, int(np.prod(shape))), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(classes, self.n_classes).float()
        return self.net(torch.cat([z, onehot], dim=1)).view(len(z), *self.shape)


def train_generator(generator: Generator, substitute: nn.Module, params: DataFreeParams,
                    gen: torch.Generator) -> None:  # fmt: skip
    """Synthesis: ``generator`` learns images ``substitute`` calls by their class."""
    substitute.eval()
    for param in substitute.parameters():
        param.requires_grad_(False)
    optimiser = torch.optim.Adam(generator.parameters(), lr=1e-3)
    generator.train()
    half = params.generator_batch // 2 or 1
    for _ in range(params.generator_steps):
        z = torch.randn(2 * half, params.noise_dim, generator=gen)
        classes = torch.randint(0, generator.n_classes, (half,), generator=gen).repeat(2)
        images = generator(z, classes)
        loss = nn.functional.cross_entropy(substitute(images), classes)
        if params.diversity:  # mode seeking: two z's of one class, images as far apart
            spread = (images[:half] - images[half:]).abs().mean(dim=(1, 2, 3))
            gap = (z[:half] - z[half:]).abs().mean(dim=1)
            loss = loss - params.diversity * (spread / gap).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    for param in substitute.parameters():
        param.requires_grad_(True)


class DataFree(ExtractionAttack):
    kind = "data-free"

    def run(self, resources: AttackerResources, *, budget=None, seed=0):
        p: DataFreeParams = self.params  # type: ignore[assignment]
        session, timer, _ = self.start(resources, budget, seed)
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        shape, n_classes = resources.input_shape, resources.n_classes
        generator = Generator(p.noise_dim, n_classes, shape)
        substitute = build_model(p.thief_arch, shape, n_classes, seed=seed)
        per_round = -(-session.remaining // p.rounds)
        substitute_training = type(p.training)(arch=p.thief_arch, steps=p.substitute_steps)
        for rnd in range(p.rounds):
            if session.exhausted or session.stopped:
                break
            with timer.stage("synthesis"):
                train_generator(generator, substitute, p, gen)
                generator.eval()
                n = min(per_round, session.remaining)
                with torch.no_grad():
                    z = torch.randn(n, p.noise_dim, generator=gen)
                    queries = generator(z, torch.randint(0, n_classes, (n,), generator=gen))
            with timer.stage("query"):
                session.ask(queries.numpy())
            if session.used == 0:
                break
            with timer.stage("substitute"):
                substitute = train_thief(session.transfer_x, session.transfer_y, shape,
                                         n_classes, substitute_training, seed=seed + rnd,
                                         desc=f"data-free round {rnd + 1}")  # fmt: skip
            progress.stage(f"[data-free] round {rnd + 1}: {session.used} queries")
        answered = session.transfer_y.argmax(1) if session.used else np.zeros(0, int)
        details = {"classes_answered": int(len(np.unique(answered)))}
        return finish(self.kind, session, timer, p.training, seed=seed, details=details)


register("attacks", "data-free", DataFreeParams,
         "ES Attack-style: generator-synthesised queries, no attacker data")(DataFree)  # fmt: skip
