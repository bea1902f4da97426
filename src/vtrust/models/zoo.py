"""The model zoo: the architectures vtrust trains, attacks and protects.

Each architecture is an ``nn.Module`` subclass that knows its own :class:`ArchSpec`
(name, input shape, classes, width parameters), so a model file can rebuild it. Every
model maps (N, C, H, W) ``float32`` images to (N, n_classes) logits and exposes its last
linear layer as ``head`` (used by last-layer fine-tuning attacks).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from vtrust.errors import InputError
from vtrust.models.plans import Layer, plan


@dataclass(frozen=True)
class ArchSpec:
    """Everything needed to rebuild an architecture: name, input shape, classes, widths."""

    name: str
    input_shape: tuple[int, int, int]
    n_classes: int
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "n_classes": self.n_classes,
            "params": dict(self.params),
        }


class Square(nn.Module):
    """The activation x ↦ x², a polynomial (so the network can be proved over a field)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


class SumPool2d(nn.Module):
    """Sum pooling over non-overlapping k×k windows (a linear map, unlike max pooling)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return nn.functional.avg_pool2d(x, k) * (k * k)


def _module(layer: Layer) -> nn.Module:
    """The torch module for one planned layer."""
    if layer.op == "linear":
        return nn.Linear(*layer.sizes)
    if layer.op == "conv":
        fan_in, fan_out, kernel, padding = layer.sizes
        return nn.Conv2d(fan_in, fan_out, kernel, padding=padding)
    simple = {"relu": nn.ReLU, "square": Square, "flatten": nn.Flatten}
    if layer.op in simple:
        return simple[layer.op]()
    pools = {"maxpool": nn.MaxPool2d, "sumpool": SumPool2d}
    return pools[layer.op](*layer.sizes)


class ZooModel(nn.Module):
    """Base class: the named sequence of layers of its architecture's plan
    (:mod:`vtrust.models.plans`) for an :class:`ArchSpec`."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]
    #: Training settings (fields of ``TrainConfig``) tuned for this architecture on digits.
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 60, "lr": 2e-3, "weight_decay": 1e-3}

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        layers = plan(spec.name, spec.input_shape, spec.n_classes, spec.params)
        self.layers = nn.Sequential(OrderedDict((layer.name, _module(layer)) for layer in layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    @property
    def head(self) -> nn.Linear:
        """The final (classification) linear layer."""
        return [m for m in self.layers if isinstance(m, nn.Linear)][-1]


class SoftmaxRegression(ZooModel):
    """Multinomial logistic regression: one linear layer on the flattened input."""

    name = "softmax"
    defaults: ClassVar[dict[str, Any]] = {}
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 60, "lr": 1e-2, "weight_decay": 0.0}


class MLP(ZooModel):
    """Fully connected ReLU network."""

    name = "mlp"
    defaults: ClassVar[dict[str, Any]] = {"hidden": [128, 64]}


class CNN(ZooModel):
    """Two conv-ReLU-maxpool blocks and two fully connected layers."""

    name = "cnn"
    defaults: ClassVar[dict[str, Any]] = {"channels": [16, 32], "hidden": 64}


class QuadNet(ZooModel):
    """Polynomial network for verifiable inference (SafetyNets): conv → x² → sum pool →
    fully connected → x² → fully connected. Every layer is a polynomial over a field."""

    name = "quad"
    defaults: ClassVar[dict[str, Any]] = {"channels": 8, "hidden": 64}
    train_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 60,
        "lr": 1e-3,
        "weight_decay": 1e-3,
        "grad_clip": 1.0,
    }


ARCHITECTURES: dict[str, type[ZooModel]] = {
    cls.name: cls for cls in (MLP, CNN, SoftmaxRegression, QuadNet)
}


def build_model(
    name: str,
    input_shape: tuple[int, int, int],
    n_classes: int,
    params: dict[str, Any] | None = None,
    *,
    seed: int = 0,
) -> ZooModel:
    """A freshly initialised model of architecture ``name``, seeded by ``seed``.

    ``params`` override the architecture's default widths; unknown keys are refused.
    """
    if name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; choose from {sorted(ARCHITECTURES)}")
    cls = ARCHITECTURES[name]
    unknown = set(params or {}) - set(cls.defaults)
    if unknown:
        raise InputError(f"architecture {name!r} has no parameter(s) {sorted(unknown)}")
    merged = {**cls.defaults, **(params or {})}
    if len(input_shape) != 3 or n_classes < 2:
        raise InputError(f"bad input shape {input_shape} or class count {n_classes}")
    spec = ArchSpec(name, tuple(int(d) for d in input_shape), int(n_classes), merged)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(spec)
