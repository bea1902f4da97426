"""The zoo's architectures as layer plans: named layers with their sizes, without torch.

One plan per architecture is the single description of it: :mod:`vtrust.models.zoo`
builds its torch modules from the plan, and :mod:`vtrust.models.header` checks a model
file's tensors against the plan's parameter shapes without importing torch (so
``vtrust info`` starts in well under a second). Plans take the architecture's merged
width parameters (defaults already applied, as a model file records them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vtrust.errors import InputError

#: The operations a plan may use (the zoo maps each to a torch module).
OPS = ("linear", "conv", "relu", "maxpool", "sumpool", "square", "flatten")


@dataclass(frozen=True)
class Layer:
    """One layer: ``linear`` sizes (in, out); ``conv`` (in, out, kernel, padding);
    ``maxpool``/``sumpool`` (kernel,); the others none."""

    name: str
    op: str
    sizes: tuple[int, ...] = ()

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shapes of this layer's weight and bias (none for parameter-free layers)."""
        if self.op == "linear":
            fan_in, fan_out = self.sizes
            return {"weight": (fan_out, fan_in), "bias": (fan_out,)}
        if self.op == "conv":
            fan_in, fan_out, kernel, _ = self.sizes
            return {"weight": (fan_out, fan_in, kernel, kernel), "bias": (fan_out,)}
        return {}


Shape = tuple[int, int, int]


def _softmax(input_shape: Shape, n_classes: int, params: dict[str, Any]) -> list[Layer]:
    c, h, w = input_shape
    return [Layer("flatten", "flatten"), Layer("fc", "linear", (c * h * w, n_classes))]


def _mlp(input_shape: Shape, n_classes: int, params: dict[str, Any]) -> list[Layer]:
    c, h, w = input_shape
    layers, width = [Layer("flatten", "flatten")], c * h * w
    hidden = [int(size) for size in params["hidden"]]
    for i, size in enumerate(hidden, start=1):
        layers += [Layer(f"fc{i}", "linear", (width, size)), Layer(f"relu{i}", "relu")]
        width = size
    return [*layers, Layer(f"fc{len(hidden) + 1}", "linear", (width, n_classes))]


def _cnn(input_shape: Shape, n_classes: int, params: dict[str, Any]) -> list[Layer]:
    c, h, w = input_shape
    c1, c2 = (int(size) for size in params["channels"])
    if h % 4 or w % 4:
        raise InputError(f"cnn needs input height and width divisible by 4, got {h}×{w}")
    hidden = int(params["hidden"])
    return [
        Layer("conv1", "conv", (c, c1, 3, 1)), Layer("relu1", "relu"),
        Layer("pool1", "maxpool", (2,)),
        Layer("conv2", "conv", (c1, c2, 3, 1)), Layer("relu2", "relu"),
        Layer("pool2", "maxpool", (2,)),
        Layer("flatten", "flatten"),
        Layer("fc1", "linear", (c2 * (h // 4) * (w // 4), hidden)), Layer("relu3", "relu"),
        Layer("fc2", "linear", (hidden, n_classes)),
    ]  # fmt: skip


def _quad(input_shape: Shape, n_classes: int, params: dict[str, Any]) -> list[Layer]:
    c, h, w = input_shape
    if h % 2 or w % 2:
        raise InputError(f"quad needs even input height and width, got {h}×{w}")
    ch, hidden = int(params["channels"]), int(params["hidden"])
    return [
        Layer("conv1", "conv", (c, ch, 3, 1)), Layer("square1", "square"),
        Layer("pool1", "sumpool", (2,)),
        Layer("flatten", "flatten"),
        Layer("fc1", "linear", (ch * (h // 2) * (w // 2), hidden)), Layer("square2", "square"),
        Layer("fc2", "linear", (hidden, n_classes)),
    ]  # fmt: skip


PLANS: dict[str, Callable[[Shape, int, dict[str, Any]], list[Layer]]] = {
    "softmax": _softmax,
    "mlp": _mlp,
    "cnn": _cnn,
    "quad": _quad,
}


def plan(name: str, input_shape: Shape, n_classes: int, params: dict[str, Any]) -> list[Layer]:
    """The layers of architecture ``name``; InputError for an unknown name, an input it
    cannot take, or width parameters that are missing or not integers."""
    if name not in PLANS:
        raise InputError(f"unknown architecture {name!r}; choose from {sorted(PLANS)}")
    try:
        layers = PLANS[name](input_shape, n_classes, params)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"architecture {name!r}: bad width parameters ({exc})") from None
    for layer in layers:
        shapes = layer.parameter_shapes().values()
        if any(size < 1 for shape in shapes for size in shape):
            raise InputError(f"architecture {name!r}: layer {layer.name} has a size below 1")
    return layers


def state_shapes(
    name: str, input_shape: Shape, n_classes: int, params: dict[str, Any]
) -> dict[str, tuple[int, ...]]:
    """The state-dict keys and tensor shapes of a zoo model of this architecture."""
    return {
        f"layers.{layer.name}.{key}": shape
        for layer in plan(name, input_shape, n_classes, params)
        for key, shape in layer.parameter_shapes().items()
    }
