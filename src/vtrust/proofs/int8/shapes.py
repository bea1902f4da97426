"""Reference architectures for the int8 proofs' costs: integer networks of the right
shapes with random int8 weights (what zkCNN and DeepProve measure), and the float
LeNet-5 that post-training quantisation turns into one.

* ``lenet5`` — LeNet-5 with ReLU and max-pooling on 28×28×1 (conv 6@5×5 pad 2, pool,
  conv 16@5×5, pool, 120, 84, 10): 61,706 parameters.
* ``vgg11`` — VGG11 on CIFAR-shaped 32×32×3 input (eight 3×3 convolutions 64-128-256-
  256-512-512-512-512 with five max-pools, then 512-512-10): 9.75M parameters.
* ``cifar_cnn`` — a CIFAR-10-shaped CNN of ≈ 266k parameters (conv 32, 64, 128 at 3×3
  with pools, then 2048-84-10), the size class of DeepProve's "CNN 264k".

Random networks draw weights uniformly in [−127, 127], biases in ±2^12, and choose every
requantisation multiplier so that activations of random int8 inputs stay spread over
the int8 range (measured on one random batch: the scale maps the 99th percentile of
|acc| to 127) — so ReLUs, clamps and max-pools do real work.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vtrust.proofs.int8.network import (
    Add,
    Conv,
    Dense,
    Flatten,
    Int8Network,
    Layer,
    MaxPool,
    Requant,
    max_pool,
    requantise,
)

Spec = list[tuple]  # ("conv", out, kernel, padding) | ("pool",) | ("flatten",) | ("dense", out)

LENET5: Spec = [("conv", 6, 5, 2), ("pool",), ("conv", 16, 5, 0), ("pool",), ("flatten",),
                ("dense", 120), ("dense", 84), ("dense", 10)]  # fmt: skip
VGG11: Spec = [("conv", 64, 3, 1), ("pool",), ("conv", 128, 3, 1), ("pool",),
               ("conv", 256, 3, 1), ("conv", 256, 3, 1), ("pool",),
               ("conv", 512, 3, 1), ("conv", 512, 3, 1), ("pool",),
               ("conv", 512, 3, 1), ("conv", 512, 3, 1), ("pool",), ("flatten",),
               ("dense", 512), ("dense", 512), ("dense", 10)]  # fmt: skip
CIFAR_CNN: Spec = [("conv", 32, 3, 1), ("pool",), ("conv", 64, 3, 1), ("pool",),
                   ("conv", 128, 3, 1), ("pool",), ("flatten",),
                   ("dense", 84), ("dense", 10)]  # fmt: skip

ARCHITECTURES: dict[str, tuple[Spec, tuple[int, int, int]]] = {
    "lenet5": (LENET5, (1, 28, 28)),
    "vgg11": (VGG11, (3, 32, 32)),
    "cifar_cnn": (CIFAR_CNN, (3, 32, 32)),
}


def random_network(name: str, *, seed: int = 0) -> Int8Network:
    """The architecture ``name`` with random int8 weights (see the module)."""
    spec, input_shape = ARCHITECTURES[name]
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 128, size=(4, *input_shape)).astype(np.int64)
    layers: list[Layer] = []
    linear = [i for i, step in enumerate(spec) if step[0] in ("conv", "dense")]
    channels = input_shape[0]
    for i, step in enumerate(spec):
        if step[0] == "pool":
            new: list[Layer] = [MaxPool(2)]
        elif step[0] == "flatten":
            new = [Flatten()]
        else:
            fan_in = x.shape[1] if x.ndim == 2 else channels
            if step[0] == "conv":
                weight = rng.integers(-127, 128, size=(step[1], fan_in, step[2], step[2]))
                layer: Layer = Conv(
                    weight.astype(np.int64), rng.integers(-4096, 4097, step[1]), 1, step[3]
                )
            else:
                weight = rng.integers(-127, 128, size=(step[1], x.shape[1]))
                layer = Dense(weight.astype(np.int64), rng.integers(-4096, 4097, step[1]))
            new = [layer]
            if i != linear[-1]:
                new.append(calibrated_requant(_apply(layer, x)))
            channels = step[1]
        for layer in new:
            x = _apply(layer, x)
        layers += new
    return Int8Network(input_shape, tuple(layers))


def calibrated_requant(acc: np.ndarray, shift: int = 24) -> Requant:
    """A ReLU requantisation mapping the 99th percentile of |acc| to 127."""
    top = max(float(np.percentile(np.abs(acc), 99)), 1.0)
    return Requant(np.array([max(1, round(127 * 2**shift / top))]), shift, True)


def _apply(layer: Layer, x: np.ndarray) -> np.ndarray:
    net_input = tuple(x.shape[1:])
    if isinstance(layer, Conv | Dense):
        return Int8Network(net_input, (layer,)).accumulate(0, x)
    if isinstance(layer, Requant):
        return requantise(x, layer)
    if isinstance(layer, MaxPool):
        return max_pool(x, layer.size)
    return x.reshape(len(x), -1)


def float_model(name: str, n_classes: int = 10) -> nn.Sequential:
    """A float torch model of architecture ``name`` (ReLU after every linear layer but
    the last), for training and post-training quantisation."""
    spec, input_shape = ARCHITECTURES[name]
    modules: list[nn.Module] = []
    channels, features = input_shape[0], None
    h, w = input_shape[1:]
    linear = [i for i, step in enumerate(spec) if step[0] in ("conv", "dense")]
    for i, step in enumerate(spec):
        if step[0] == "conv":
            modules.append(nn.Conv2d(channels, step[1], step[2], padding=step[3]))
            channels, h, w = step[1], h + 2 * step[3] - step[2] + 1, w + 2 * step[3] - step[2] + 1
        elif step[0] == "pool":
            modules.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        elif step[0] == "flatten":
            modules.append(nn.Flatten())
            features = channels * h * w
        else:
            out = n_classes if i == linear[-1] else step[1]
            modules.append(nn.Linear(features, out))
            features = out
        if step[0] in ("conv", "dense") and i != linear[-1]:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


def float_twin(network: Int8Network) -> nn.Sequential:
    """The network's float32 counterpart (same shapes and weights, ReLU where a
    requantisation clamps at 0): what the int8 forward pass is timed against."""
    modules: list[nn.Module] = []
    for layer in network.layers:
        if isinstance(layer, Conv):
            o, c, k, _ = layer.weight.shape
            module = nn.Conv2d(c, o, k, stride=layer.stride, padding=layer.padding)
            module.weight.data = torch.from_numpy(layer.weight.astype(np.float32))
            modules.append(module)
        elif isinstance(layer, Dense):
            module = nn.Linear(layer.weight.shape[1], layer.weight.shape[0])
            module.weight.data = torch.from_numpy(layer.weight.astype(np.float32))
            modules.append(module)
        elif isinstance(layer, Requant):
            modules.append(nn.ReLU() if layer.relu else nn.Identity())
        elif isinstance(layer, MaxPool):
            modules.append(nn.MaxPool2d(layer.size))
        else:
            modules.append(nn.Flatten())
    return nn.Sequential(*modules).eval()


def single_layer(kind: str, *, seed: int = 0) -> Int8Network:
    """The memory probes of the issue: ``mnist-conv`` (28×28×1 → 26×26×32, ReLU, then a
    dense head) and ``dense-16k`` (a 16,384 × 16,384 int8 layer, ReLU, dense head)."""
    rng = np.random.default_rng(seed)
    if kind == "mnist-conv":
        conv = Conv(rng.integers(-127, 128, (32, 1, 3, 3), dtype=np.int8), np.zeros(32, np.int64))
        head = Dense(rng.integers(-127, 128, (10, 21632), dtype=np.int8), np.zeros(10, np.int64))
        return Int8Network((1, 28, 28), (conv, Requant(np.array([1 << 14]), 24), Flatten(), head))
    if kind == "dense-16k":
        n = 16384
        weight = np.empty((n, n), dtype=np.int8)
        for start in range(0, n, 1024):  # int8 straight from the generator: no wide copy
            weight[start : start + 1024] = rng.integers(-127, 128, (1024, n), dtype=np.int8)
        head = Dense(rng.integers(-127, 128, (10, n), dtype=np.int8), np.zeros(10, np.int64))
        layers = (
            Flatten(),
            Dense(weight, np.zeros(n, np.int64)),
            Requant(np.array([1 << 14]), 32),
            head,
        )
        return Int8Network((1, 128, 128), layers)
    raise ValueError(f"unknown probe {kind!r}")


def timit_relu(*, seed: int = 0) -> Int8Network:
    """SafetyNets' TIMIT shape (1845-2000-2000-2000-183) with ReLU and requantisation in
    place of x², random int8 weights (input 1845 = 1 × 45 × 41)."""
    rng = np.random.default_rng(seed)
    widths = [1845, 2000, 2000, 2000, 183]
    layers: list[Layer] = [Flatten()]
    x = rng.integers(0, 128, size=(4, 1845))
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        dense = Dense(rng.integers(-127, 128, (b, a), dtype=np.int8), rng.integers(-4096, 4097, b))
        layers.append(dense)
        x = _apply(dense, x)
        if i < len(widths) - 2:
            layers.append(calibrated_requant(x))
            x = _apply(layers[-1], x)
    return Int8Network((1, 45, 41), tuple(layers))


def residual_network(*, seed: int = 0) -> Int8Network:
    """A small residual CNN on 1×8×8 (conv, ReLU; conv, ReLU; add of the two; pool; dense)
    with random int8 weights: the residual add the verifier computes itself."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 128, size=(4, 1, 8, 8)).astype(np.int64)
    layers: list[Layer] = []
    for channels_in in (1, 4):
        conv = Conv(
            rng.integers(-127, 128, (4, channels_in, 3, 3)), rng.integers(-999, 999, 4), 1, 1
        )
        x = _apply(conv, x)
        layers += [conv, calibrated_requant(x)]
        x = _apply(layers[-1], x)
    layers += [Add(1, (3, 2), 2), MaxPool(2), Flatten()]
    layers.append(Dense(rng.integers(-127, 128, (5, 64)), rng.integers(-999, 999, 5)))
    return Int8Network((1, 8, 8), tuple(layers))
