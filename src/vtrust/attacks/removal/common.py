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
        return self._attack(private_copy(model).eval(), subset, strength, seed).eval()


def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy whose parameters are trainable leaves (a copied TorchScript module's
    are not, and an optimizer refuses them)."""
    duplicate = copy.deepcopy(model)
    for parameter in duplicate.parameters():
        if not parameter.is_leaf:
            parameter.detach_()
            parameter.requires_grad_(True)
    return duplicate


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


def head_of(model: nn.Module, attack: str) -> nn.Module:
    """The model's last layer: a zoo model's ``head``, else its last ``nn.Linear``
    (InputError if it has none, e.g. a TorchScript or converted ONNX graph)."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        return head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InputError(
            f"{attack} needs the model's last linear layer, and this model has no "
            "nn.Linear (fine-tuning all layers, ftal, works on any white box)"
        )
    return linears[-1]


def weight_tensors(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The weight matrices and kernels (not biases) of every linear and conv layer; for a
    model without such layers (TorchScript, a converted ONNX graph), every parameter of
    rank ≥ 2."""
    layers = [
        (f"{name}.weight", module.weight)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.Conv2d))
    ]
    if layers:
        return layers
    return [(name, p) for name, p in model.named_parameters() if p.dim() >= 2]


def nonzero_fraction(model: nn.Module) -> float:
    """Share of non-zero entries over all weight tensors."""
    tensors = [w.detach().numpy() for _, w in weight_tensors(model)]
    return float(sum(np.count_nonzero(t) for t in tensors) / sum(t.size for t in tensors))
