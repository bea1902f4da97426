"""Post-training quantisation of an ordinary PyTorch ReLU network to an
:class:`~vtrust.proofs.int8.network.Int8Network`.

The model is traced (``torch.fx``) into a chain of operations; supported are
``nn.Conv2d`` (no groups or dilation), ``nn.Linear``, ``nn.BatchNorm2d`` right after a
convolution (folded into its weights and bias), ``nn.ReLU`` / ``F.relu`` /
``torch.relu``, ``nn.MaxPool2d`` (square, stride = kernel) / ``F.max_pool2d``,
``nn.Flatten`` / ``torch.flatten`` / ``Tensor.flatten`` from dimension 1, ``nn.Dropout`` and
``nn.Identity`` (dropped), and residual adds (``a + b`` / ``torch.add`` of the chain's
value and an earlier one, requantised to their own scale). Anything else — and any
graph that branches other than through such an add — is refused with
:class:`~vtrust.errors.CircuitError` naming the node.

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
from vtrust.proofs.int8.network import Add, Conv, Dense, Flatten, Int8Network, MaxPool, Requant

MULTIPLIER_BITS = 15


@dataclass(frozen=True)
class QuantizedModel:
    """An integer network and the scales that relate it to the float model.

    Attributes:
        network: the integer network.
        input_scale: inputs are ``clamp(round(x / input_scale) + z, −128, 127) − z``
            with z the ``input_zero_point`` (0 for vtrust's own quantisation; an
            imported TFLite model's inputs are stored with their zero point removed).
        output_scale: logits ≈ output accumulators × this (per class when per-channel).
    """

    network: Int8Network
    input_scale: float
    output_scale: np.ndarray
    input_zero_point: int = 0

    def quantize_inputs(self, x: np.ndarray) -> np.ndarray:
        """Images in [0, 1] (N, C, H, W) → the network's integer inputs; InputError
        outside [0, 1]."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 4 or not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise InputError("inputs must be finite images in [0, 1] of shape (N, C, H, W)")
        z = self.input_zero_point
        return np.clip(np.rint(x / self.input_scale) + z, -128, 127).astype(np.int64) - z

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class predictions of the integer network for float images (accumulators
        rescaled per class: per-channel weight scales differ between classes)."""
        return (self.network.predict(self.quantize_inputs(x)) * self.output_scale).argmax(axis=1)


@dataclass(frozen=True)
class Step:
    """One traced operation: ``op`` a module, 'relu', 'flatten', ('maxpool', k), a folded
    ('conv'|'dense', module, weight, bias), or 'add' with ``skip`` the index of the step
    whose output it adds (−1: the model's input)."""

    name: str
    op: object
    skip: int | None = None


ADD_TARGETS = (operator.add, torch.add)


def _chain(model: nn.Module) -> list[Step]:
    """The traced model as a chain of steps, each taking the previous one's output;
    an add may also take an earlier step's (a residual connection)."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # fx raises many kinds on untraceable code
        raise CircuitError(f"cannot trace the model: {exc}") from None
    modules = dict(model.named_modules())
    steps: list[Step] = []
    index: dict[fx.Node, int] = {}  # a node's value is the output of this step (−1: input)
    current = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if current is not None:
                raise CircuitError("the model takes more than one input")
            current, index[node] = node, -1
            continue
        if node.op == "output":
            if node.args[0] is not current:
                raise CircuitError("the model's output is not the end of its chain")
            continue
        inputs = [a for a in node.args if isinstance(a, fx.Node)]
        if any(isinstance(v, fx.Node) for v in node.kwargs.values()):
            raise CircuitError(f"{node.name}: not a chain (a keyword input)")
        is_add = node.target in ADD_TARGETS or (node.op == "call_method" and node.target == "add")
        if is_add and len(inputs) == 2 and current in inputs and len(node.args) == 2:
            other = inputs[1] if inputs[0] is current else inputs[0]
            steps.append(Step(node.name, "add", index[other]))
        elif inputs != [current]:
            raise CircuitError(f"{node.name}: not a chain (a branch other than a residual add)")
        else:
            name, op = _step(node, modules)
            if op is None:  # dropped: the node's value is its input's
                index[node], current = index[current], node
                continue
            steps.append(Step(name, op))
        index[node], current = len(steps) - 1, node
    return steps


def _step(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str, object]:
    name = str(node.target)
    if node.op == "call_module":
        module = modules[name]
        if isinstance(module, nn.Dropout | nn.Identity):
            return name, None
        if isinstance(module, nn.ReLU):
            return name, "relu"
        if isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise CircuitError(f"{name}: only Flatten(1, -1) (keeping the batch) is supported")
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
    if target is torch.flatten or (node.op == "call_method" and target == "flatten"):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        if start != 1 or end != -1:
            raise CircuitError(f"{node.name}: only flatten(1) (keeping the batch) is supported")
        return node.name, "flatten"
    if node.op == "call_method" and target in ("view", "reshape"):
        raise CircuitError(f"{node.name}: {target} is not supported; use flatten(1)")
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


def _folded(steps: list[Step]) -> list[Step]:
    """Batch norms folded into the convolution before them (weights, bias as float64);
    every step index (an add's skip) is kept by leaving a folded norm's place as an
    identity."""
    out: list[Step] = []
    for step in steps:
        name, op = step.name, step.op
        if isinstance(op, nn.BatchNorm2d):
            before = out[-1] if out else None
            if before is None or not isinstance(before.op, tuple) or before.op[0] != "conv":
                raise CircuitError(f"{name}: a batch norm must follow a convolution")
            _, conv, weight, bias = before.op
            scale = op.weight.detach().double() / torch.sqrt(op.running_var.double() + op.eps)
            weight = weight * scale.reshape(-1, 1, 1, 1)
            bias = (bias - op.running_mean.double()) * scale + op.bias.detach().double()
            out[-1] = Step(before.name, ("conv", conv, weight, bias))
            out.append(Step(name, "folded"))
        elif isinstance(op, nn.Conv2d):
            if op.groups != 1 or op.dilation not in (1, (1, 1)) or isinstance(op.padding, str):
                raise CircuitError(
                    f"{name}: grouped, dilated or 'same'-padded convolutions are not supported"
                )
            if len(set(op.stride)) != 1 or len(set(op.padding)) != 1 or op.padding_mode != "zeros":
                raise CircuitError(f"{name}: only square strides and zero padding")
            out.append(
                Step(name, ("conv", op, op.weight.detach().double(), _bias(op, op.out_channels)))
            )
        elif isinstance(op, nn.Linear):
            out.append(
                Step(name, ("dense", op, op.weight.detach().double(), _bias(op, op.out_features)))
            )
        else:
            out.append(step)
    return out


def _bias(module: nn.Module, size: int) -> torch.Tensor:
    if module.bias is None:
        return torch.zeros(size, dtype=torch.float64)
    return module.bias.detach().double()


def _float_forward(steps: list[Step], x: torch.Tensor) -> list[torch.Tensor]:
    """Each step's float64 output."""
    values: list[torch.Tensor] = []
    source = x
    for step in steps:
        op = step.op
        if op == "relu":
            x = torch.relu(x)
        elif op == "flatten":
            x = x.reshape(len(x), -1)
        elif op == "add":
            x = x + (values[step.skip] if step.skip >= 0 else source)
        elif op == "folded":
            pass
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
    steps = _folded(_chain(model.eval()))
    with torch.no_grad():
        floats = _float_forward(steps, torch.from_numpy(calibration))
    linear = [
        i
        for i, st in enumerate(steps)
        if isinstance(st.op, tuple) and st.op[0] in ("conv", "dense")
    ]
    if not linear:
        raise CircuitError("the model has no convolution or linear layer")
    builder = _Builder(steps, floats, per_channel, tuple(calibration.shape[1:]))
    for i in range(len(steps)):
        if i == linear[-1]:
            if any(later.op != "folded" for later in steps[i + 1 :]):
                raise CircuitError(f"{steps[-1].name}: nothing may follow the last linear layer")
            return builder.finish(i)
        builder.add(i)
    raise CircuitError("unreachable")  # pragma: no cover


class _Builder:
    """Emits the integer layers step by step, keeping each step's int8 scale and the
    index of the integer layer that holds its value (for a residual add's source)."""

    def __init__(self, steps: list[Step], floats: list[torch.Tensor], per_channel: bool,
                 input_shape: tuple[int, ...]):  # fmt: skip
        self.steps, self.floats, self.per_channel = steps, floats, per_channel
        self.input_shape = input_shape
        self.layers: list = []
        self.names: list[str] = []
        self.scale = {-1: 1.0 / 127}  # step index → scale of its int8 value
        self.holder = {-1: -1}  # step index → integer layer index holding its value
        self.current = -1  # the step whose value flows on

    def _emit(self, layer, name: str, step: int) -> None:
        self.layers.append(layer)
        self.names.append(name)
        self.holder[step], self.scale[step] = len(self.layers) - 1, self.scale[self.current]
        self.current = step

    def _relu_next(self, i: int) -> bool:
        j = i + 1
        while j < len(self.steps) and self.steps[j].op == "folded":
            j += 1
        return j < len(self.steps) and self.steps[j].op == "relu"

    def _out_scale(self, i: int, relu: bool) -> float:
        j = i + 1 if relu else i
        while relu and self.steps[j].op != "relu":
            j += 1
        return max(float(self.floats[j].abs().max()), 1e-12) / 127

    def _linear(self, i: int):
        kind, module, weight, bias = self.steps[i].op
        w = weight.numpy().reshape(len(weight), -1)
        top = np.abs(w).max(axis=1) if self.per_channel else np.full(len(w), np.abs(w).max())
        s_w = np.where(top > 0, top, 1.0) / 127
        w_int = np.rint(weight.numpy() / s_w.reshape((-1,) + (1,) * (weight.ndim - 1)))
        acc_scale = self.scale[self.current] * s_w
        b_int = np.rint(bias.numpy() / acc_scale).astype(np.int64)
        if kind == "conv":
            layer = Conv(
                w_int.astype(np.int64), b_int, int(module.stride[0]), int(module.padding[0])
            )
        else:
            layer = Dense(w_int.astype(np.int64), b_int)
        return layer, acc_scale

    def add(self, i: int) -> None:
        step = self.steps[i]
        op = step.op
        if op == "folded":
            self.holder[i], self.scale[i], self.current = (
                self.holder[self.current],
                self.scale[self.current],
                i,
            )
        elif op == "relu":  # fused into the requantisation or add before it
            fused = (
                self.layers and isinstance(self.layers[-1], Requant | Add) and self.layers[-1].relu
            )
            pooled = (
                len(self.layers) > 1
                and isinstance(self.layers[-1], MaxPool)
                and getattr(self.layers[-2], "relu", False)
            )
            if not (fused or pooled):
                raise CircuitError(
                    f"{step.name}: a ReLU must follow a convolution, linear layer or add"
                )
            self.holder[i], self.scale[i], self.current = (
                self.holder[self.current],
                self.scale[self.current],
                i,
            )
        elif op == "flatten":
            self._emit(Flatten(), step.name, i)
        elif op == "add":
            source = self.holder[step.skip]
            if source >= 0 and not isinstance(self.layers[source], Requant | MaxPool | Add):
                raise CircuitError(
                    f"{step.name}: a residual add's operands must be int8 activations"
                )
            relu = self._relu_next(i)
            s_out = self._out_scale(i, relu)
            ratios = np.array([self.scale[self.current], self.scale[step.skip]]) / s_out
            multipliers, shift = _multiplier(ratios)
            layer = Add(source, (int(multipliers[0]), int(multipliers[1])), shift, relu)
            self._emit(layer, step.name, i)
            self.scale[i] = s_out
        elif op[0] == "maxpool":
            if (
                self.layers
                and isinstance(self.layers[-1], Requant)
                and not self.layers[-1].relu
                and self._relu_next(i)
            ):
                before = self.layers[-1]  # conv → pool → ReLU: the ReLU commutes with the pool
                self.layers[-1] = Requant(before.multiplier, before.shift, True)
            self._emit(MaxPool(op[1]), step.name, i)
        else:
            layer, acc_scale = self._linear(i)
            self._emit(layer, step.name, i)
            relu = self._relu_next(i)
            s_out = self._out_scale(i, relu)
            multiplier, shift = _multiplier(acc_scale / s_out)
            requant = Requant(multiplier if self.per_channel else multiplier[:1], shift, relu)
            self._emit(requant, f"{step.name}.requant", i)
            self.scale[i] = s_out

    def finish(self, i: int) -> QuantizedModel:
        """The last linear layer (its accumulators are the outputs) and the network."""
        layer, acc_scale = self._linear(i)
        self._emit(layer, self.steps[i].name, i)
        network = Int8Network(self.input_shape, tuple(self.layers), tuple(self.names))
        return QuantizedModel(network, 1.0 / 127, acc_scale)
