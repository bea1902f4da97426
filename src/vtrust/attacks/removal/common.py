"""The removal-attack interface and the strength sweep."""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from torch import nn

from vtrust import progress
from vtrust.data import Dataset
from vtrust.errors import InputError
from vtrust.models import accuracy, agreement


@dataclass(frozen=True)
class RemovalParams:
    """``strengths``: the sweep; ``data_fraction``: share of the attacker split used."""

    strengths: list[float] = field(default_factory=lambda: [1.0])
    data_fraction: float = 1.0

    def __post_init__(self) -> None:
        if not self.strengths:
            raise InputError("strengths must not be empty")
        if not 0 < self.data_fraction <= 1:
            raise InputError(f"data_fraction must be in (0, 1], got {self.data_fraction}")


class RemovalAttack(abc.ABC):
    """Changes a copy of a model; never the model it is given.

    ``apply(model, data, strength, seed)`` returns the attacked copy; ``data`` is the
    attacker's in-distribution split (labels included: the attacker owns that data).
    """

    kind: ClassVar[str]
    strength_name: ClassVar[str] = "strength"

    def __init__(self, params: RemovalParams) -> None:
        self.params = params

    @abc.abstractmethod
    def _attack(self, model: nn.Module, data: Dataset, strength: float, seed: int) -> nn.Module:
        """Attack ``model`` (already a private copy) in place or return a new one."""

    def apply(self, model: nn.Module, data: Dataset, strength: float, *, seed: int = 0):
        subset = data.take(self.params.data_fraction, seed=seed)
        return self._attack(copy.deepcopy(model).eval(), subset, strength, seed).eval()


Metric = Callable[[nn.Module], float]


def sweep(
    attack: RemovalAttack,
    model: nn.Module,
    data: Dataset,
    test: Dataset,
    *,
    seed: int = 0,
    metrics: Mapping[str, Metric] | None = None,
    strengths: list[float] | None = None,
) -> list[dict[str, Any]]:
    """Attack ``model`` at every strength; one row per strength with the attacked copy's
    test accuracy, fidelity to the original and any extra ``metrics``."""
    rows = []
    for strength in progress.bar(strengths or attack.params.strengths, desc=attack.kind):
        attacked = attack.apply(model, data, float(strength), seed=seed)
        row = {
            "strength": float(strength),
            "accuracy": accuracy(attacked, test),
            "fidelity": agreement(attacked, model, test.x),
        }
        for name, metric in (metrics or {}).items():
            row[name] = float(metric(attacked))
        rows.append(row)
    return rows


def weight_tensors(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The weight matrices and kernels (not biases) of every linear and conv layer."""
    return [
        (f"{name}.weight", module.weight)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.Conv2d))
    ]


def nonzero_fraction(model: nn.Module) -> float:
    """Share of non-zero entries over all weight tensors."""
    tensors = [w.detach().numpy() for _, w in weight_tensors(model)]
    return float(sum(np.count_nonzero(t) for t in tensors) / sum(t.size for t in tensors))
