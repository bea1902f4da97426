"""Pruning removal attacks.

* ``prune``: magnitude pruning — zero the smallest-magnitude weights, either the same
  fraction in every layer (``layer``) or one threshold over all layers (``global``).
  Strength = sparsity in [0, 1).
* ``fine-prune`` (Liu et al., RAID 2018): prune the hidden units of the last hidden layer
  that are least active on clean data (zero their incoming and outgoing weights), then
  fine-tune with the pruned units kept at zero. Strength = fraction of units pruned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from vtrust.attacks.removal.common import RemovalAttack, RemovalParams, weight_tensors
from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.models import TrainConfig, fit


@dataclass(frozen=True)
class PruneParams(RemovalParams):
    scope: Literal["layer", "global"] = "layer"
    strengths: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9])

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(not 0 <= s < 1 for s in self.strengths):
            raise InputError("sparsities must be in [0, 1)")


def magnitude_prune(model: nn.Module, sparsity: float, scope: str) -> nn.Module:
    """Zero the ``sparsity`` share of smallest-magnitude weights (in place)."""
    tensors = [w for _, w in weight_tensors(model)]
    with torch.no_grad():
        if scope == "global":
            everything = torch.cat([w.abs().flatten() for w in tensors])
            k = int(sparsity * everything.numel())
            if k > 0:
                threshold = everything.kthvalue(k).values
                for w in tensors:
                    w.mul_((w.abs() > threshold).to(w.dtype))
        else:
            for w in tensors:
                k = int(sparsity * w.numel())
                if k > 0:
                    threshold = w.abs().flatten().kthvalue(k).values
                    w.mul_((w.abs() > threshold).to(w.dtype))
    return model


class Prune(RemovalAttack):
    kind = "prune"
    strength_name = "sparsity"

    def _attack(self, model, data, strength, seed):
        return magnitude_prune(model, strength, self.params.scope)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class FinePruneParams(RemovalParams):
    strengths: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    epochs: int = 5
    lr: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(not 0 <= s < 1 for s in self.strengths) or self.epochs < 0 or self.lr <= 0:
            raise InputError("fractions must be in [0, 1), epochs >= 0, lr > 0")


def _last_hidden_pair(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """The layer producing the last hidden representation and the head consuming it."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if len(layers) < 2 or not isinstance(layers[-2], nn.Linear):
        raise InputError("fine-pruning needs a model whose head follows a linear hidden layer")
    return layers[-2], layers[-1]


class FinePrune(RemovalAttack):
    kind = "fine-prune"
    strength_name = "pruned fraction"

    def _attack(self, model, data, strength, seed):
        p: FinePruneParams = self.params  # type: ignore[assignment]
        hidden, head = _last_hidden_pair(model)
        activations: list[torch.Tensor] = []
        hook = hidden.register_forward_hook(lambda m, i, o: activations.append(o.detach()))
        with torch.no_grad():
            model(torch.from_numpy(data.x))
        hook.remove()
        mean_activation = torch.relu(torch.cat(activations)).mean(0).numpy()
        n_prune = int(strength * len(mean_activation))
        pruned = np.argsort(mean_activation, kind="stable")[:n_prune]
        mask = torch.ones(len(mean_activation))
        mask[torch.from_numpy(pruned)] = 0.0

        def apply_mask() -> None:
            with torch.no_grad():
                hidden.weight.mul_(mask[:, None])
                hidden.bias.mul_(mask)
                head.weight.mul_(mask[None, :])

        apply_mask()
        if p.epochs > 0:
            config = TrainConfig(epochs=p.epochs, lr=p.lr, cosine=False, seed=seed)
            fit(model, data, config, after_step=apply_mask, desc="fine-prune")
        return model


register(
    "attacks",
    "prune",
    PruneParams,
    "magnitude pruning, layer-wise or global, over a sparsity sweep",
)(Prune)
register(
    "attacks",
    "fine-prune",
    FinePruneParams,
    "Liu et al.: prune dormant last-layer units, then fine-tune",
)(FinePrune)
