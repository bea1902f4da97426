"""Post-training quantisation of an ordinary PyTorch ReLU network to an
:class:`~vtrust.proofs.int8.network.Int8Network`.

The model is traced (``torch.fx``) into a chain of operations; supported are
``nn.Conv2d`` (no groups or dilation), ``nn.Linear``, ``nn.BatchNorm2d`` right after a
convolution (folded into its weights and bias), ``nn.ReLU`` / ``F.relu`` /
``torch.relu``, ``nn.MaxPool2d`` (square, stride = kernel) / ``F.max_pool2d``,
``nn.Flatten`` / ``torch.flatten``, ``view``/``reshape`` to (N, −1), ``nn.Dropout`` and
``nn.Identity`` (dropped). Anything else — and any graph that is not a single chain,
such as a residual add — is refused with :class:`~vtrust.errors.CircuitError` naming the
node.

Symmetric int8 throughout: inputs in [0, 1] become ``round(127·x)``; weights use one
scale per tensor (or, ``per_channel``, per output channel) ``max|W| / 127``; biases are
int32 at the accumulator's scale ``s_in·s_w``; every activation's scale is calibrated
as ``max|a| / 127`` over calibration data run through the float model; the
requantisation multiplier of ``s_in·s_w / s_out`` is a 15-bit integer M with a shift k
(``M / 2^k``, relative error ≤ 2^-14).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn

from vtrust.errors import CircuitError, InputError
from vtrust.proofs.int8.network import Conv, Dense, Flatten, Int8Network, MaxPool, Requant

MULTIPLIER_BITS = 15


@dataclass(frozen=True)
class QuantizedModel:
    """An integer network and the scales that relate it to the float model.

    Attributes:
        network: the integer network.
        input_scale: inputs are ``round(x / input_scale)``.
        output_scale: logits ≈ output accumulators × this (per class when per-channel).
    """

    network: Int8Network
    input_scale: float
    output_scale: np.ndarray

    def quantize_inputs(self, x: np.ndarray) -> np.ndarray:
        """Images in [0, 1] (N, C, H, W) → int8 inputs; InputError outside [0, 1]."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 4 or not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise InputError("inputs must be finite images in [0, 1] of shape (N, C, H, W)")
        return np.rint(x / self.input_scale).astype(np.int64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class predictions of the integer network for float images (accumulators
        rescaled per class: per-channel weight scales differ between classes)."""
        return (self.network.predict(self.quantize_inputs(x)) * self.output_scale).argmax(axis=1)


def _chain(model: nn.Module) -> list[tuple[str, object]]:
    """The traced model as a list of (name, op): modules or ('relu'|'flatten'|'maxpool', k)."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # fx raises many kinds on untraceable code
        raise CircuitError(f"cannot trace the model: {exc}") from None
    modules = dict(model.named_modules())
    steps, current = [], None
    for node in graph.nodes:
        if node.op == "placeholder":
            if current is not None:
                raise CircuitError("the model takes more than one input")
            current = node
            continue
        if node.op == "output":
            if node.args[0] is not current:
                raise CircuitError("the model's output is not the end of its chain")
            continue
        inputs = [a for a in node.args if isinstance(a, fx.Node)]
        if inputs != [current] or any(isinstance(v, fx.Node) for v in node.kwargs.values()):
            raise CircuitError(f"{node.name}: not a single chain (a residual or branch?)")
        steps.append(_step(node, modules))
        current = node
    return [s for s in steps if s[1] is not None]


def _step(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str, object]:
    name = str(node.target)
    if node.op == "call_module":
        module = modules[name]
        if isinstance(module, nn.Dropout | nn.Identity):
            return name, None
        if isinstance(module, nn.ReLU):
            return name, "relu"
        if isinstance(module, nn.Flatten):
            return name, "flatten"
        if isinstance(module, nn.MaxPool2d):
            return name, (
                "maxpool",
                _pool_size(module.kernel_size, module.stride, module.padding, name),
            )
        if isinstance(module, nn.Conv2d | nn.Linear | nn.BatchNorm2d):
            return name, module
        raise CircuitError(f"{name}: cannot express a {type(module).__name__}")
    target = node.target
    if target in (torch.relu, nn.functional.relu) or (
        node.op == "call_method" and target == "relu"
    ):
        return node.name, "relu"
    if target is torch.flatten or (
        node.op == "call_method" and target in ("view", "reshape", "flatten")
    ):
        if (
            target in ("view", "reshape")
            and list(node.args[1:]) not in ([-1],)
            and node.args[2:] != (-1,)
        ):
            raise CircuitError(f"{node.name}: only a reshape to (N, −1) is supported")
        return node.name, "flatten"
    if target is nn.functional.max_pool2d:
        size = node.args[1] if len(node.args) > 1 else node.kwargs.get("kernel_size")
        stride = node.args[2] if len(node.args) > 2 else node.kwargs.get("stride")
        return node.name, ("maxpool", _pool_size(size, stride or size, 0, node.name))
    if target is operator.getitem:
        raise CircuitError(f"{node.name}: indexing is not supported")
    raise CircuitError(f"{node.name}: cannot express {getattr(target, '__name__', target)}")


def _pool_size(kernel, stride, padding, name: str) -> int:
    k = kernel if isinstance(kernel, int) else kernel[0]
    s = stride if isinstance(stride, int) else stride[0]
    if (
        (not isinstance(kernel, int) and len(set(kernel)) != 1)
        or s != k
        or padding not in (0, (0, 0))
    ):
        raise CircuitError(f"{name}: only square max-pools with stride = kernel and no padding")
    return int(k)


def _folded(layers: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """Batch norms folded into the convolution before them (weights, bias as float64)."""
    out: list[tuple[str, object]] = []
    for name, op in layers:
        if isinstance(op, nn.BatchNorm2d):
            if not out or not isinstance(out[-1][1], tuple) or out[-1][1][0] != "conv":
                raise CircuitError(f"{name}: a batch norm must follow a convolution")
            _, conv, weight, bias = out[-1][1]
            scale = op.weight.detach().double() / torch.sqrt(op.running_var.double() + op.eps)
            weight = weight * scale.reshape(-1, 1, 1, 1)
            bias = (bias - op.running_mean.double()) * scale + op.bias.detach().double()
            out[-1] = (out[-1][0], ("conv", conv, weight, bias))
        elif isinstance(op, nn.Conv2d):
            if op.groups != 1 or op.dilation not in (1, (1, 1)) or isinstance(op.padding, str):
                raise CircuitError(
                    f"{name}: grouped, dilated or 'same'-padded convolutions are not supported"
                )
            if len(set(op.stride)) != 1 or len(set(op.padding)) != 1 or op.padding_mode != "zeros":
                raise CircuitError(f"{name}: only square strides and zero padding")
            bias = (
                op.bias.detach().double()
                if op.bias is not None
                else torch.zeros(op.out_channels, dtype=torch.float64)
            )
            out.append((name, ("conv", op, op.weight.detach().double(), bias)))
        elif isinstance(op, nn.Linear):
            bias = (
                op.bias.detach().double()
                if op.bias is not None
                else torch.zeros(op.out_features, dtype=torch.float64)
            )
            out.append((name, ("dense", op, op.weight.detach().double(), bias)))
        else:
            out.append((name, op))
    return out


def _float_forward(steps, x: torch.Tensor) -> list[torch.Tensor]:
    """Each step's float64 output."""
    values = []
    for _, op in steps:
        if op == "relu":
            x = torch.relu(x)
        elif op == "flatten":
            x = x.reshape(len(x), -1)
        elif op[0] == "maxpool":
            x = nn.functional.max_pool2d(x, op[1])
        elif op[0] == "conv":
            conv = op[1]
            x = nn.functional.conv2d(x, op[2], op[3], conv.stride, conv.padding)
        else:
            x = x @ op[2].T + op[3]
        values.append(x)
    return values


def _multiplier(ratio: np.ndarray) -> tuple[np.ndarray, int]:
    """Integers M (≥ 1, < 2^15) and one shift k with M / 2^k ≈ ratio (per channel)."""
    top = float(np.max(ratio))
    if not np.isfinite(top) or top <= 0:
        raise CircuitError("a requantisation scale is zero or not finite")
    shift = MULTIPLIER_BITS - 1 - math.floor(math.log2(top))
    if shift < 1 or shift > 40:
        raise CircuitError(f"a requantisation scale {top:.3g} is out of range")
    return np.maximum(1, np.rint(ratio * 2.0**shift)).astype(np.int64), shift


def quantize_model(
    model: nn.Module,
    calibration: np.ndarray,
    *,
    per_channel: bool = False,
) -> QuantizedModel:
    """Post-training int8 quantisation (see the module) with ``calibration`` images in
    [0, 1] (N, C, H, W). CircuitError names a layer it cannot express."""
    calibration = np.asarray(calibration, dtype=np.float64)
    if calibration.ndim != 4 or len(calibration) < 1:
        raise InputError("calibration data must be images (N, C, H, W)")
    model = model.eval()
    steps = _folded(_chain(model))
    with torch.no_grad():
        floats = _float_forward(steps, torch.from_numpy(calibration))
    input_scale = 1.0 / 127
    s_in = np.array([input_scale])
    linear_positions = [
        i for i, (_, op) in enumerate(steps) if isinstance(op, tuple) and op[0] in ("conv", "dense")
    ]
    if not linear_positions:
        raise CircuitError("the model has no convolution or linear layer")
    layers, names = [], []
    for i, (name, op) in enumerate(steps):
        if op == "relu":  # fused into the requantisation before it (a max-pool commutes)
            if layers and isinstance(layers[-1], MaxPool) and isinstance(layers[-2], Requant):
                before = layers[-2]
                layers[-2] = Requant(before.multiplier, before.shift, True)
            elif not layers or not isinstance(layers[-1], Requant):
                raise CircuitError(f"{name}: a ReLU must follow a convolution or linear layer")
            continue
        if op == "flatten":
            layers.append(Flatten()), names.append(name)
            continue
        if op[0] == "maxpool":
            layers.append(MaxPool(op[1])), names.append(name)
            continue
        kind, module, weight, bias = op
        w = weight.numpy().reshape(len(weight), -1)
        top = np.abs(w).max(axis=1) if per_channel else np.full(len(w), np.abs(w).max())
        s_w = np.where(top > 0, top, 1.0) / 127
        w_int = np.rint(weight.numpy() / s_w.reshape((-1,) + (1,) * (weight.ndim - 1))).astype(
            np.int64
        )
        acc_scale = float(s_in[0]) * s_w
        b_int = np.rint(bias.numpy() / acc_scale).astype(np.int64)
        if kind == "conv":
            layer = Conv(w_int, b_int, int(module.stride[0]), int(module.padding[0]))
        else:
            layer = Dense(w_int, b_int)
        layers.append(layer), names.append(name)
        if i == linear_positions[-1]:
            if i != len(steps) - 1:
                raise CircuitError(f"{steps[-1][0]}: nothing may follow the last linear layer")
            network = Int8Network(tuple(calibration.shape[1:]), tuple(layers), tuple(names))
            return QuantizedModel(network, input_scale, acc_scale)
        relu = i + 1 < len(steps) and steps[i + 1][1] == "relu"
        activation = floats[i + 1] if relu else floats[i]
        s_out = max(float(activation.abs().max()), 1e-12) / 127
        multiplier, shift = _multiplier(acc_scale / s_out)
        layers.append(Requant(multiplier if per_channel else multiplier[:1], shift, relu))
        names.append(steps[i + 1][0] if relu else f"{name}.requant")
        s_in = np.array([s_out])
    raise CircuitError("unreachable")  # pragma: no cover
