"""The model zoo: the architectures vtrust trains, attacks and protects.

Each architecture is an ``nn.Module`` subclass that knows its own :class:`ArchSpec`
(name, input shape, classes, width parameters), so a model file can rebuild it. Every
model maps (N, C, H, W) ``float32`` images to (N, n_classes) logits and exposes its last
linear layer as ``head`` (used by last-layer fine-tuning attacks).
"""

from __future__ import annotations

import abc
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from vtrust.errors import InputError


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


class ZooModel(nn.Module, abc.ABC):
    """Base class: a named sequence of layers built from an :class:`ArchSpec`."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]
    #: Training settings (fields of ``TrainConfig``) tuned for this architecture on digits.
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 60, "lr": 2e-3, "weight_decay": 1e-3}

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        self.layers = nn.Sequential(self._build(spec.input_shape, spec.n_classes, spec.params))

    @abc.abstractmethod
    def _build(
        self, input_shape: tuple[int, int, int], n_classes: int, params: dict[str, Any]
    ) -> OrderedDict[str, nn.Module]:
        """The named layers of this architecture, in order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    @property
    def head(self) -> nn.Linear:
        """The final (classification) linear layer."""
        return [m for m in self.layers if isinstance(m, nn.Linear)][-1]


def _flat(input_shape: tuple[int, int, int]) -> int:
    c, h, w = input_shape
    return c * h * w


class SoftmaxRegression(ZooModel):
    """Multinomial logistic regression: one linear layer on the flattened input."""

    name = "softmax"
    defaults: ClassVar[dict[str, Any]] = {}
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 60, "lr": 1e-2, "weight_decay": 0.0}

    def _build(self, input_shape, n_classes, params):
        return OrderedDict(flatten=nn.Flatten(), fc=nn.Linear(_flat(input_shape), n_classes))


class MLP(ZooModel):
    """Fully connected ReLU network."""

    name = "mlp"
    defaults: ClassVar[dict[str, Any]] = {"hidden": [128, 64]}

    def _build(self, input_shape, n_classes, params):
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        width = _flat(input_shape)
        for i, h in enumerate(params["hidden"], start=1):
            layers[f"fc{i}"] = nn.Linear(width, h)
            layers[f"relu{i}"] = nn.ReLU()
            width = h
        layers[f"fc{len(params['hidden']) + 1}"] = nn.Linear(width, n_classes)
        return layers


class CNN(ZooModel):
    """Two conv-ReLU-maxpool blocks and two fully connected layers."""

    name = "cnn"
    defaults: ClassVar[dict[str, Any]] = {"channels": [16, 32], "hidden": 64}

    def _build(self, input_shape, n_classes, params):
        c, h, w = input_shape
        c1, c2 = params["channels"]
        if h % 4 or w % 4:
            raise InputError(f"cnn needs input height and width divisible by 4, got {h}×{w}")
        return OrderedDict(
            conv1=nn.Conv2d(c, c1, 3, padding=1),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(c1, c2, 3, padding=1),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc1=nn.Linear(c2 * (h // 4) * (w // 4), params["hidden"]),
            relu3=nn.ReLU(),
            fc2=nn.Linear(params["hidden"], n_classes),
        )


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

    def _build(self, input_shape, n_classes, params):
        c, h, w = input_shape
        if h % 2 or w % 2:
            raise InputError(f"quad needs even input height and width, got {h}×{w}")
        ch = params["channels"]
        return OrderedDict(
            conv1=nn.Conv2d(c, ch, 3, padding=1),
            square1=Square(),
            pool1=SumPool2d(2),
            flatten=nn.Flatten(),
            fc1=nn.Linear(ch * (h // 2) * (w // 2), params["hidden"]),
            square2=Square(),
            fc2=nn.Linear(params["hidden"], n_classes),
        )


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
