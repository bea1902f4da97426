"""From a trained quadratic-activation network to a circuit over F_p.

Inputs in [0, 1] become ``input_bits``-bit integers; each linear map's weights become
signed ``weight_bits``-bit integers (scaled by their largest magnitude), its bias is
rounded at the scale its inputs and weights give; negatives are embedded as p − |v|.
Convolutions and sum pooling are linear maps and are compiled to (integer) matrices;
consecutive linear maps are fused, so the circuit alternates Linear and Square layers.

The bound analysis propagates, per neuron, the largest magnitude any input in range can
produce (``Σ |w| · bound + |b|``, squared by x² layers) and refuses a network or bit
width at which a value could reach p/2 — where it would wrap around and the field result
would no longer be the integer one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vtrust.errors import CircuitError, InputError
from vtrust.models.zoo import Square as SquareModule
from vtrust.models.zoo import SumPool2d
from vtrust.proofs import field as F
from vtrust.proofs.circuit import Circuit, Linear, Square, pad_matrix, pad_vector

MARGIN = 1 + 1e-9  # float64 bounds are inflated by this to stay upper bounds


@dataclass(frozen=True)
class QuantSpec:
    """Bit widths: inputs are unsigned ``input_bits``-bit, weights signed ``weight_bits``."""

    input_bits: int = 4
    weight_bits: int = 6

    def __post_init__(self) -> None:
        if not 1 <= self.input_bits <= 16 or not 2 <= self.weight_bits <= 16:
            raise InputError(f"bit widths out of range: {self}")

    @property
    def input_scale(self) -> int:
        return (1 << self.input_bits) - 1


def quantize_inputs(x: np.ndarray, spec: QuantSpec) -> np.ndarray:
    """Images in [0, 1] (N, C, H, W) → non-negative integers (N, C·H·W)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise InputError("inputs must be finite images in [0, 1] of shape (N, C, H, W)")
    return np.rint(x.reshape(len(x), -1) * spec.input_scale).astype(np.int64)


def _linear_maps(model: nn.Module, input_shape: tuple[int, int, int]):
    """The network as ('linear', float matrix, float bias | None, exact) and ('square',)
    steps on flattened C·H·W vectors; ``exact`` marks integer maps (pooling)."""
    steps = []
    shape = tuple(input_shape)
    for name, module in model.layers.named_children():
        n_in = int(np.prod(shape))
        if isinstance(module, nn.Conv2d | SumPool2d):
            basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *shape)
            with torch.no_grad():
                if isinstance(module, nn.Conv2d):
                    weight = module.weight.detach().double()
                    out = torch.nn.functional.conv2d(
                        basis, weight, None, module.stride, module.padding, module.dilation,
                        module.groups,
                    )  # fmt: skip
                    bias = (
                        module.bias.detach().double().numpy() if module.bias is not None else None
                    )
                    shape = tuple(out.shape[1:])
                    per_pixel = int(np.prod(shape[1:]))
                    bias_full = None if bias is None else np.repeat(bias, per_pixel)
                    steps.append(("linear", out.reshape(n_in, -1).T.numpy(), bias_full, False))
                else:
                    out = module(basis)
                    shape = tuple(out.shape[1:])
                    steps.append(("linear", out.reshape(n_in, -1).T.numpy(), None, True))
        elif isinstance(module, nn.Linear):
            bias = module.bias.detach().double().numpy() if module.bias is not None else None
            steps.append(("linear", module.weight.detach().double().numpy(), bias, False))
            shape = (module.out_features,)
        elif isinstance(module, SquareModule):
            steps.append(("square",))
        elif isinstance(module, nn.Flatten):
            shape = (int(np.prod(shape)),)
        else:
            raise CircuitError(f"layer {name!r} ({type(module).__name__}) has no circuit form")
    return steps


@dataclass(frozen=True)
class CompiledNetwork:
    """A circuit with what its compilation found: per-layer value bounds (bits)."""

    circuit: Circuit
    spec: QuantSpec
    bound_bits: list[float]


def compile_network(
    model: nn.Module, input_shape: tuple[int, int, int], spec: QuantSpec, batch: int
) -> CompiledNetwork:
    """Quantise ``model`` (a zoo model of conv/linear/pool/x² layers) into a circuit.

    Raises:
        CircuitError: an unsupported layer, or a value bound reaching p/2.
    """
    if batch < 1:
        raise InputError(f"batch must be positive, got {batch}")
    steps = _linear_maps(model, input_shape)
    scale = float(spec.input_scale)  # the integer value of 1.0 at this point
    # float64 bounds, inflated by a relative margin that covers their rounding
    bound = np.full(int(np.prod(input_shape)), float(spec.input_scale))
    q_max = (1 << (spec.weight_bits - 1)) - 1
    layers: list[tuple[np.ndarray, np.ndarray] | str] = []
    pending: tuple[np.ndarray, np.ndarray] | None = None  # fused integer map and bias
    bits: list[float] = []
    for step in steps:
        if step[0] == "square":
            if pending is not None:
                layers.append(pending)
                pending = None
            layers.append("square")
            bound = bound * bound * MARGIN
            scale = scale * scale
            bits.append(_bits(bound))
            continue
        _, matrix, bias, exact = step
        if exact:
            w_q = np.rint(matrix).astype(np.int64)
            w_scale = 1.0
        else:
            peak = float(np.abs(matrix).max()) or 1.0
            w_scale = q_max / peak
            w_q = np.rint(matrix * w_scale).astype(np.int64)
        scale *= w_scale
        b_q = (
            np.zeros(w_q.shape[0], dtype=object)
            if bias is None
            else np.array([round(v) for v in bias * scale], dtype=object)
        )
        bound = (np.abs(w_q).astype(np.float64) @ bound + np.abs(b_q).astype(np.float64)) * MARGIN
        bits.append(_bits(bound))
        if pending is not None:  # fuse: (W2 (W1 x + b1) + b2)
            w1, b1 = pending
            b_q = (
                np.array(
                    [sum(int(a) * int(b) for a, b in zip(row, b1, strict=True)) for row in w_q],
                    dtype=object,
                )
                + b_q
            )
            w_q = w_q @ w1
        pending = (w_q, b_q)
    if pending is not None:
        layers.append(pending)
    for i, b in enumerate(bits):
        if b >= 60:  # p/2 ≈ 2^60
            raise CircuitError(
                f"values after compiled layer {i + 1} may reach 2^{b:.1f} ≥ p/2: lower the "
                f"bit widths (inputs {spec.input_bits}, weights {spec.weight_bits} bits)"
            )
    return CompiledNetwork(_to_circuit(layers, batch), spec, bits)


def _bits(bound: np.ndarray) -> float:
    peak = float(bound.max()) if bound.size else 0.0
    return float(np.log2(peak)) if peak > 0 else 0.0


def _to_circuit(layers, batch: int) -> Circuit:
    out: list[Linear | Square] = []
    n_inputs = None
    width = None
    n_outputs = 0
    for item in layers:
        if isinstance(item, str):
            out.append(Square(width))
            continue
        w_q, b_q = item
        n_out, n_in = w_q.shape
        if n_inputs is None:
            n_inputs = n_in
            width = F.pad_pow2(n_in)
        rows = F.pad_pow2(n_out)
        out.append(
            Linear(pad_matrix(w_q, rows, width), pad_vector(F.elements(b_q.astype(object)), rows))
        )
        width, n_outputs = rows, n_out
    return Circuit(tuple(out), F.pad_pow2(batch), int(n_inputs), int(n_outputs))


def circuit_predictions(compiled: CompiledNetwork, x_images: np.ndarray) -> np.ndarray:
    """Top-1 classes of the quantised network computed exactly over F_p, in batches."""
    circuit = compiled.circuit
    q = quantize_inputs(x_images, compiled.spec)
    preds = []
    for start in range(0, len(q), circuit.batch):
        chunk = q[start : start + circuit.batch]
        values = circuit.forward(circuit.pad_inputs(F.elements(chunk)))
        logits = F.signed(values[-1][: len(chunk), : circuit.n_outputs])
        preds.append(logits.argmax(axis=1))
    return np.concatenate(preds)


class _FakeQuant(nn.Module):
    """Weight parametrization: round to the signed grid the compiler will use, with a
    straight-through gradient."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.q_max = (1 << (bits - 1)) - 1

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = self.q_max / w.detach().abs().max().clamp_min(1e-12)
        return w + (torch.round(w * scale) / scale - w).detach()


def finetune_quantized(
    model: nn.Module, data, spec: QuantSpec, *, epochs: int = 10, lr: float = 5e-4, seed: int = 0
) -> nn.Module:
    """Quantisation-aware fine-tuning: a copy of ``model`` trained for ``epochs`` on
    ``data`` (a Dataset) with inputs on the ``input_bits`` grid and weights rounded to
    the ``weight_bits`` grid in every forward pass (straight-through gradients). The
    returned weights lie on that grid, so compiling loses nothing more."""
    import copy

    from torch.nn.utils import parametrize

    from vtrust.data import Dataset
    from vtrust.models.training import TrainConfig, fit

    tuned = copy.deepcopy(model)
    layers = [m for m in tuned.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    for module in layers:
        parametrize.register_parametrization(module, "weight", _FakeQuant(spec.weight_bits))
    grid = np.rint(data.x * spec.input_scale) / spec.input_scale
    on_grid = Dataset(grid.astype(np.float32), data.y, data.n_classes, data.name)
    fit(tuned, on_grid, TrainConfig(epochs=epochs, lr=lr, grad_clip=1.0, seed=seed))
    for module in layers:
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return tuned.eval()
