"""Weight perturbation removal attacks.

* ``weight-noise``: add Gaussian noise of standard deviation ``strength ×`` the std of
  each weight tensor.
* ``weight-shift``: the same perturbation followed by ``epochs`` of fine-tuning all
  layers on the attacker's data to win the accuracy back (the perturb-then-repair
  pattern of the weight-shifting attack in Lukas et al.'s SoK toolbox).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vtrust.attacks.removal.common import RemovalAttack, RemovalParams, weight_tensors
from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.models import TrainConfig, fit


@dataclass(frozen=True)
class WeightNoiseParams(RemovalParams):
    strengths: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.5, 1.0])
    epochs: int = 0
    lr: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(s < 0 for s in self.strengths) or self.epochs < 0 or self.lr <= 0:
            raise InputError("noise levels and epochs must be non-negative, lr positive")


def add_weight_noise(model, relative_std: float, seed: int):
    """Add N(0, (relative_std · std(w))²) to every weight tensor ``w`` (in place)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, w in weight_tensors(model):
            noise = torch.randn(w.shape, generator=generator, dtype=w.dtype)
            w.add_(noise * relative_std * w.std())
    return model


class WeightNoise(RemovalAttack):
    kind = "weight-noise"
    strength_name = "relative noise std"

    def _attack(self, model, data, strength, seed):
        p: WeightNoiseParams = self.params  # type: ignore[assignment]
        add_weight_noise(model, strength, seed)
        if p.epochs > 0:
            fit(
                model,
                data,
                TrainConfig(epochs=p.epochs, lr=p.lr, cosine=False, seed=seed),
                desc=self.kind,
            )
        return model


class WeightShift(WeightNoise):
    kind = "weight-shift"


@dataclass(frozen=True)
class WeightShiftParams(WeightNoiseParams):
    epochs: int = 5


register(
    "attacks",
    "weight-noise",
    WeightNoiseParams,
    "add Gaussian noise relative to each layer's weight spread",
)(WeightNoise)
register(
    "attacks",
    "weight-shift",
    WeightShiftParams,
    "perturb the weights, then fine-tune to repair accuracy",
)(WeightShift)
