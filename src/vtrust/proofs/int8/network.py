"""Integer networks as deployed on edge devices: int8 weights and activations, int32
accumulators, requantisation between layers, ReLU, max-pooling.

Layers (frozen dataclasses, forward order):

* :class:`Conv` — ``acc[o] = Σ_{c,u,v} W[o,c,u,v] · x[c, i·s + u, j·s + v] + b[o]`` with
  zero padding; :class:`Dense` — ``acc = W x + b`` on a flat vector. Weights are int8
  (|w| ≤ 127), biases int32, inputs int8.
* :class:`Requant` — ``z = clamp(⌊(M·acc + 2^(k−1)) / 2^k⌋, lo, 127)``: the integer
  multiplier M (per tensor or per output channel) and shift k stand for the real scale
  ``s_in · s_w / s_out``; ``lo`` is 0 with a fused ReLU, −128 without. Every linear layer
  but the last is followed by one; the last layer's accumulators are the outputs.
* :class:`MaxPool` (k×k windows, stride k) and :class:`Flatten` act on int8 values;
  :class:`Add` adds an earlier layer's int8 output (a residual connection) with its own
  requantisation.

:meth:`Int8Network.forward` is exact integer arithmetic (float64 convolutions stay
exact because the bound analysis keeps every accumulator below 2^50; the requantised
products below 2^62). A network whose values could leave those bounds, or whose layers
do not chain, is refused with :class:`~vtrust.errors.CircuitError` naming the layer.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from vtrust.errors import CircuitError, InputError

INT8_MIN, INT8_MAX = -128, 127
MAX_ACCUMULATOR = 1 << 50  #: |acc| below this: float64 convolutions are exact
#: |M·acc + 2^(k−1)| below this: then |M·acc + 2^(k−1) − 2^T·q| < 2^59 + 2^T < p/2 for
#: every quotient the verifier admits, so a remainder cannot wrap around the field
MAX_PRODUCT = 1 << 58


@dataclass(frozen=True)
class Conv:
    """A 2-D convolution: ``weight`` (O, C, kh, kw) int8 values, ``bias`` (O,) int32."""

    weight: np.ndarray
    bias: np.ndarray
    stride: int = 1
    padding: int = 0

    def __post_init__(self) -> None:
        _store_parameters(self, 4)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        c, h, w = shape
        o, ci, kh, kw = self.weight.shape
        if c != ci:
            raise CircuitError(f"a convolution over {ci} channels got {c}")
        out_h = (h + 2 * self.padding - kh) // self.stride + 1
        out_w = (w + 2 * self.padding - kw) // self.stride + 1
        if out_h < 1 or out_w < 1:
            raise CircuitError(f"a {kh}×{kw} convolution does not fit a {h}×{w} input")
        return (o, out_h, out_w)


@dataclass(frozen=True)
class Dense:
    """A fully connected layer: ``weight`` (O, I) int8 values, ``bias`` (O,) int32."""

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        _store_parameters(self, 2)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int]:
        if len(shape) != 1 or shape[0] != self.weight.shape[1]:
            raise CircuitError(f"a dense layer over {self.weight.shape[1]} inputs got {shape}")
        return (int(self.weight.shape[0]),)


ROUNDINGS = ("floor", "double", "single", "double-up")


@dataclass(frozen=True)
class Requant:
    """``clamp(⌊(M·acc + 2^(shift−1)) / 2^shift⌋, lo, hi)``; ``multiplier`` (1,) or one per
    output channel (positive integers), ``relu`` sets lo = 0 (else −128), hi = 127.

    Two more roundings reproduce TFLite's integer kernels (see
    :mod:`vtrust.proofs.int8.litert`), each with ``post_shift`` e (one per tensor or
    output channel, in [0, 31]):

    * ``"double"``: t = ⌊(M·acc + 2^(k−1)) / 2^k⌋ (gemmlowp's rounding doubling high
      multiply for k = 31), then t / 2^e rounded half away from zero;
      ``"double-up"`` the same with the second rounding half up;
    * ``"single"``: ⌊(M·acc + 2^(k−1+e)) / 2^(k+e)⌋, one rounding.

    ``clamp`` (lo, hi) replaces the range for values stored with their zero point
    subtracted (an 8-bit range: hi − lo ≤ 255). Every output is a function of the
    quotient ⌊(M·acc + 2^(k−1)) / 2^T⌋ for T ≤ :attr:`max_table_bits`, which the verifier
    holds in the clear and checks with a range proof on the remainder."""

    multiplier: np.ndarray
    shift: int
    relu: bool = True
    rounding: str = "floor"
    post_shift: np.ndarray | None = None
    clamp: tuple[int, int] | None = None

    @property
    def low(self) -> int:
        if self.clamp is not None:
            return self.clamp[0]
        return 0 if self.relu else INT8_MIN

    @property
    def high(self) -> int:
        return INT8_MAX if self.clamp is None else self.clamp[1]

    @property
    def max_table_bits(self) -> int:
        """The largest T whose quotient determines the output."""
        return self.shift - 1 if self.rounding == "single" else self.shift

    def apply(self, quotient: np.ndarray, table_bits: int) -> np.ndarray:
        """The outputs from the quotient q = ⌊(M·acc + 2^(k−1)) / 2^T⌋ (N, C, …), T ≤
        :attr:`max_table_bits` (T = 0: q is M·acc + 2^(k−1) itself)."""
        k, t_bits = self.shift, table_bits
        if self.rounding == "floor":
            t = quotient >> (k - t_bits)
        else:
            e = np.asarray(self.post_shift, dtype=np.int64)
            e = e.reshape((1, -1) + (1,) * (quotient.ndim - 2))
            if self.rounding in ("double", "double-up"):
                t = quotient >> (k - t_bits)
                half = np.where(e > 0, np.left_shift(1, np.maximum(e - 1, 0)), 0)
                away = (t < 0) & (e > 0) if self.rounding == "double" else 0
                t = (t + half - away) >> e
            else:  # 2^(k−1+e) − 2^(k−1) is a multiple of 2^T: added to the quotient
                extra = (np.left_shift(1, k - 1 + e) - (1 << (k - 1))) >> t_bits
                t = (quotient + extra) >> (k + e - t_bits)
        dtype = np.int8 if self.low >= INT8_MIN and self.high <= INT8_MAX else np.int16
        return np.clip(t, self.low, self.high).astype(dtype)


@dataclass(frozen=True)
class MaxPool:
    """Max over non-overlapping ``size``×``size`` windows (a remainder row or column is
    dropped, as in torch)."""

    size: int

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        c, h, w = shape
        if h < self.size or w < self.size:
            raise CircuitError(f"a {self.size}×{self.size} max-pool does not fit {h}×{w}")
        return (c, h // self.size, w // self.size)


@dataclass(frozen=True)
class Flatten:
    """(C, H, W) → (C·H·W,), row-major."""


@dataclass(frozen=True)
class Add:
    """A residual add of int8 values: ``clamp(⌊(M_a·v + M_b·u + 2^(k−1)) / 2^k⌋, lo, 127)``
    with v the previous layer's output and u layer ``source``'s (−1: the network's
    input), both int8 of one shape; ``multipliers`` (M_a, M_b) positive, ``relu`` sets
    lo = 0. The verifier holds both operands, so it computes the add itself."""

    source: int
    multipliers: tuple[int, int]
    shift: int
    relu: bool = True

    @property
    def low(self) -> int:
        return 0 if self.relu else INT8_MIN

    def apply(self, v: np.ndarray, u: np.ndarray) -> np.ndarray:
        total = self.multipliers[0] * v.astype(np.int64) + self.multipliers[1] * u.astype(np.int64)
        return np.clip((total + (1 << (self.shift - 1))) >> self.shift, self.low, INT8_MAX).astype(
            np.int8
        )


Layer = Conv | Dense | Requant | MaxPool | Flatten | Add
LINEAR = (Conv, Dense)
INT8_VALUED = (Requant, MaxPool, Add)  # layers whose outputs are int8 values the verifier holds


def max_pool(x: np.ndarray, size: int) -> np.ndarray:
    """Max-pooling of (N, C, H, W) integers over size×size windows."""
    n, c, h, w = x.shape
    hh, ww = h // size, w // size
    windows = x[:, :, : hh * size, : ww * size].reshape(n, c, hh, size, ww, size)
    return windows.max(axis=(3, 5))


@dataclass(frozen=True)
class Int8Network:
    """An integer network over inputs of ``input_shape`` (C, H, W) int8 values.

    Attributes:
        layers: in forward order (see the module).
        names: one name per layer (its source module, for messages).
        input_range: the inputs' (lo, hi), an 8-bit range (hi − lo ≤ 255): int8 by
            default, or int8 values with their zero point subtracted (an imported
            TFLite model's inputs).
    """

    input_shape: tuple[int, int, int]
    layers: tuple[Layer, ...]
    names: tuple[str, ...] = ()
    input_range: tuple[int, int] = (INT8_MIN, INT8_MAX)

    def __post_init__(self) -> None:
        if not self.names:
            object.__setattr__(
                self, "names", tuple(f"layer {i + 1}" for i in range(len(self.layers)))
            )
        if len(self.names) != len(self.layers):
            raise CircuitError("one name per layer")
        _check_range(self.input_range, "the input range")
        object.__setattr__(self, "input_range", tuple(int(v) for v in self.input_range))
        self.shapes  # noqa: B018 — validates chaining and bounds
        self.accumulator_bounds  # noqa: B018

    @functools.cached_property
    def shapes(self) -> list[tuple[int, ...]]:
        """The value shape after each layer (without the batch), the input first."""
        shape: tuple[int, ...] = tuple(self.input_shape)
        out = [shape]
        linear_seen = [i for i, layer in enumerate(self.layers) if isinstance(layer, LINEAR)]
        if not linear_seen:
            raise CircuitError("the network has no convolution or dense layer")
        for i, layer in enumerate(self.layers):
            where = self.names[i]
            previous = self.layers[i - 1] if i else None
            try:
                if isinstance(layer, Requant):
                    if not isinstance(previous, LINEAR):
                        raise CircuitError("a requantisation must follow a linear layer")
                    if layer.shift < 1 or layer.shift > 40:
                        raise CircuitError(f"the shift must be in [1, 40], got {layer.shift}")
                    m = np.asarray(layer.multiplier)
                    if (
                        m.ndim != 1
                        or len(m) not in (1, shape[0])
                        or (m < 1).any()
                        or (m >= 1 << 31).any()
                    ):
                        raise CircuitError(
                            "multipliers: one positive int32 per tensor or output channel"
                        )
                    _check_rounding(layer, shape[0])
                elif isinstance(layer, LINEAR):
                    if i != linear_seen[-1] and not isinstance(self._after(i), Requant):
                        raise CircuitError("every linear layer but the last needs a requantisation")
                    if i == linear_seen[-1] and i != len(self.layers) - 1:
                        raise CircuitError("the last linear layer's accumulators are the outputs")
                    shape = layer.output_shape(shape)
                elif isinstance(layer, MaxPool):
                    if len(shape) != 3 or layer.size < 1:
                        raise CircuitError("a max-pool acts on (C, H, W) values")
                    shape = layer.output_shape(shape)
                elif isinstance(layer, Flatten):
                    shape = (int(np.prod(shape)),)
                elif isinstance(layer, Add):
                    self._check_add(i, layer, out)
                else:
                    raise CircuitError(f"cannot express a {type(layer).__name__} layer")
                if isinstance(layer, Conv) and (
                    len(out[-1]) != 3 or layer.stride < 1 or layer.padding < 0
                ):
                    raise CircuitError("a convolution acts on (C, H, W) values")
            except CircuitError as exc:
                raise CircuitError(f"{where}: {exc}") from None
            out.append(shape)
        return out

    def _check_add(self, i: int, layer: Add, shapes: list[tuple[int, ...]]) -> None:
        previous = self.layers[i - 1] if i else None
        if not isinstance(previous, INT8_VALUED):
            raise CircuitError("a residual add must follow a requantisation, max-pool or add")
        source = layer.source
        if type(source) is not int or not -1 <= source < i - 1:
            raise CircuitError(
                f"the add's source must be the input (-1) or a layer before it, not {source!r}"
            )
        if source >= 0 and not isinstance(self.layers[source], INT8_VALUED):
            raise CircuitError(
                "the add's source must be int8 values (a requantisation, max-pool or add)"
            )
        if shapes[source + 1] != shapes[-1]:
            raise CircuitError(f"cannot add shapes {shapes[source + 1]} and {shapes[-1]}")
        m = layer.multipliers
        if len(m) != 2 or any(type(v) is not int or not 1 <= v < 1 << 31 for v in m):
            raise CircuitError("an add needs two positive int32 multipliers")
        if type(layer.shift) is not int or not 1 <= layer.shift <= 40:
            raise CircuitError(f"the shift must be in [1, 40], got {layer.shift}")

    def _after(self, i: int) -> Layer | None:
        return self.layers[i + 1] if i + 1 < len(self.layers) else None

    @functools.cached_property
    def value_ranges(self) -> list[tuple[int, int]]:
        """The (lo, hi) of the values entering each layer (for a linear layer: of its
        inputs; a range is None inside a linear layer's accumulators)."""
        ranges, current = [], self.input_range
        for layer in self.layers:
            ranges.append(current)
            if isinstance(layer, Requant | Add):
                current = (layer.low, layer.high if isinstance(layer, Requant) else INT8_MAX)
        return ranges

    @functools.cached_property
    def accumulator_bounds(self) -> list[int]:
        """Per linear layer, the largest |acc| any admissible input can produce;
        CircuitError where it, or the requantised product, exceeds what stays exact."""
        bounds = []
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, LINEAR):
                continue
            top = max(abs(v) for v in self.value_ranges[i])
            bound = int((_abs_row_sums(layer.weight) * top + np.abs(layer.bias)).max())
            if bound >= MAX_ACCUMULATOR:
                raise CircuitError(f"{self.names[i]}: accumulators could reach {bound:.3g}")
            after = self._after(i)
            if isinstance(after, Requant):
                product = bound * int(np.max(after.multiplier)) + (1 << (after.shift - 1))
                if product >= MAX_PRODUCT:
                    raise CircuitError(
                        f"{self.names[i + 1]}: requantised values could reach {product:.3g}"
                    )
            bounds.append(bound)
        return bounds

    def rounded_bound(self, index: int) -> int:
        """The largest |M·acc + 2^(k−1)| of the requantisation after linear layer
        ``index`` (below :data:`MAX_PRODUCT`)."""
        requant = self.layers[index + 1]
        bound = self.accumulator_bounds[self.linear_indices.index(index)]
        return bound * int(np.max(requant.multiplier)) + (1 << (requant.shift - 1))

    @property
    def linear_indices(self) -> list[int]:
        return [i for i, layer in enumerate(self.layers) if isinstance(layer, LINEAR)]

    @property
    def n_outputs(self) -> int:
        return int(np.prod(self.shapes[-1]))

    def check_inputs(self, x: np.ndarray) -> np.ndarray:
        """Integer inputs (N, C, H, W) in the input range, as int64; InputError otherwise."""
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.input_shape) or len(x) < 1:
            expected = ", ".join(map(str, self.input_shape))
            raise InputError(f"inputs must have shape (N, {expected}), got {x.shape}")
        if not np.issubdtype(x.dtype, np.integer):
            raise InputError(f"inputs must be integers, got {x.dtype}")
        low, high = self.input_range
        if x.size and (x.min() < low or x.max() > high):
            what = "int8 values" if (low, high) == (INT8_MIN, INT8_MAX) else f"in [{low}, {high}]"
            raise InputError(f"inputs must be {what}")
        return x.astype(np.int64)

    def accumulate(self, index: int, x: np.ndarray) -> np.ndarray:
        """The linear layer ``index``'s accumulators for int inputs x (N, …), exact:
        float32 products where the bound keeps every sum below 2^24, else float64;
        a dense layer's weights are converted a block of rows at a time (the network
        keeps them as int8, one byte each)."""
        layer = self.layers[index]
        bound = self.accumulator_bounds[self.linear_indices.index(index)]
        dtype = torch.float32 if bound < 1 << 24 else torch.float64
        inputs = torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
        with torch.no_grad():
            if isinstance(layer, Dense):
                rows = max(1, (1 << 23) // max(layer.weight.shape[1], 1))
                product = torch.cat([
                    inputs @ torch.from_numpy(layer.weight[start : start + rows]).to(dtype).T
                    for start in range(0, len(layer.weight), rows)
                ], dim=1)  # fmt: skip
            else:
                weight = torch.from_numpy(layer.weight).to(dtype)
                product = torch.nn.functional.conv2d(inputs, weight, stride=layer.stride,
                                                     padding=layer.padding)  # fmt: skip
        acc = product.to(torch.float64).numpy().astype(np.int64)
        shape = (1, -1) + (1,) * (acc.ndim - 2)
        return acc + layer.bias.reshape(shape)

    def forward(self, x: np.ndarray, tamper=None) -> list[np.ndarray]:
        """Every layer's integer values for inputs x (N, C, H, W): ``[x, v1, …, vL]``.
        ``tamper(i, v)``, if given, replaces layer i's output before later layers see it
        (how the attack catalog builds a dishonest prover's values)."""
        values = [self.check_inputs(x)]
        for i, layer in enumerate(self.layers):
            v = values[-1]
            if isinstance(layer, LINEAR):
                out = self.accumulate(i, v)
            elif isinstance(layer, Requant):
                out = requantise(v, layer)
            elif isinstance(layer, MaxPool):
                out = max_pool(v, layer.size)
            elif isinstance(layer, Add):
                out = layer.apply(v, values[layer.source + 1])
            else:
                out = v.reshape(len(v), -1)
            values.append(out if tamper is None else tamper(i, out))
        return values

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The output accumulators (N, n_outputs)."""
        return self.forward(x)[-1].reshape(len(x), -1)

    def sha256(self) -> str:
        """Hash of the structure, weights, biases and requantisation parameters."""
        return self._digest

    @functools.cached_property
    def _digest(self) -> str:
        h = hashlib.sha256(b"vtrust-int8-network/2")
        h.update(np.array([*self.input_shape, *self.input_range], "<i8").tobytes())
        for layer in self.layers:
            h.update(type(layer).__name__.encode() + b"\0")
            if isinstance(layer, LINEAR):
                h.update(np.array(layer.weight.shape, "<i8").tobytes())
                h.update(memoryview(layer.weight).cast("B"))  # int8: hashed without a copy
                h.update(np.ascontiguousarray(layer.bias, "<i8").tobytes())
                if isinstance(layer, Conv):
                    h.update(np.array([layer.stride, layer.padding], "<i8").tobytes())
            elif isinstance(layer, Requant):
                m = np.asarray(layer.multiplier, "<i8")
                e = np.asarray([] if layer.post_shift is None else layer.post_shift, "<i8")
                fields = [len(m), layer.shift, int(layer.relu), ROUNDINGS.index(layer.rounding),
                          layer.low, layer.high, len(e)]  # fmt: skip
                h.update(np.array(fields, "<i8").tobytes() + m.tobytes() + e.tobytes())
            elif isinstance(layer, MaxPool):
                h.update(np.array([layer.size], "<i8").tobytes())
            elif isinstance(layer, Add):
                fields = [layer.source, *layer.multipliers, layer.shift, int(layer.relu)]
                h.update(np.array(fields, "<i8").tobytes())
        return h.hexdigest()


def channel_multipliers(layer: Requant, channels: int) -> np.ndarray:
    m = np.asarray(layer.multiplier, dtype=np.int64)
    return np.broadcast_to(m, (channels,)) if len(m) == 1 else m


def rounded(acc: np.ndarray, layer: Requant) -> np.ndarray:
    """M·acc + 2^(k−1), per channel (axis 1)."""
    m = channel_multipliers(layer, acc.shape[1])
    return acc * m.reshape((1, -1) + (1,) * (acc.ndim - 2)) + (1 << (layer.shift - 1))


def requantise(acc: np.ndarray, layer: Requant) -> np.ndarray:
    """The outputs of a requantisation."""
    return layer.apply(rounded(acc, layer), 0)


def _abs_row_sums(weight: np.ndarray) -> np.ndarray:
    """Σ |w| per output row, a block of rows at a time (no wide copy of the weights)."""
    w = weight.reshape(len(weight), -1)
    rows = max(1, (1 << 22) // max(w.shape[1], 1))
    return np.concatenate([np.abs(w[i : i + rows], dtype=np.int16).sum(axis=1, dtype=np.int64)
                           for i in range(0, len(w), rows)])  # fmt: skip


def _store_parameters(layer: Conv | Dense, ndim: int) -> None:
    """Check a linear layer's weights (int8 values, ``ndim`` dimensions) and biases
    (int32, one per output) and store them as int8 / int64 arrays."""
    weight, bias = np.asarray(layer.weight), np.asarray(layer.bias)
    if weight.ndim != ndim or not weight.size:
        raise CircuitError(f"{type(layer).__name__} weights must have {ndim} dimensions")
    _check_integer(weight, INT8_MIN + 1, INT8_MAX, "weights")
    _check_integer(bias, -(1 << 31), (1 << 31) - 1, "biases")
    if bias.shape != (weight.shape[0],):
        raise CircuitError("one bias per output channel")
    object.__setattr__(layer, "weight", np.ascontiguousarray(weight, dtype=np.int8))
    object.__setattr__(layer, "bias", np.ascontiguousarray(bias, dtype=np.int64))


def _check_range(bounds, what: str) -> None:
    """An 8-bit range of integers: lo < hi, hi − lo ≤ 255, both within ±255."""
    if (
        not isinstance(bounds, tuple | list)
        or len(bounds) != 2
        or any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in bounds)
        or not -255 <= bounds[0] < bounds[1] <= 255
        or bounds[1] - bounds[0] > 255
    ):
        raise CircuitError(f"{what} must be two integers lo < hi with hi − lo ≤ 255")


def _check_rounding(layer: Requant, channels: int) -> None:
    """The rounding, its post-shift (one per tensor or channel, in [0, 31]) and the
    optional clamp."""
    if layer.rounding not in ROUNDINGS:
        raise CircuitError(f"the rounding must be one of {', '.join(ROUNDINGS)}")
    if (layer.post_shift is None) != (layer.rounding == "floor"):
        raise CircuitError("the double and single roundings (only) take post-shifts")
    if layer.rounding == "single" and layer.shift < 2:
        raise CircuitError("a single rounding needs a shift of at least 2")
    if layer.post_shift is not None:
        e = np.asarray(layer.post_shift)
        if (
            e.ndim != 1
            or len(e) not in (1, channels)
            or not np.issubdtype(e.dtype, np.integer)
            or (e < 0).any()
            or (e > 31).any()
        ):
            raise CircuitError("post-shifts: one integer in [0, 31] per tensor or output channel")
    if layer.clamp is not None:
        _check_range(layer.clamp, "a clamp")


def _check_integer(a: np.ndarray, low: int, high: int, what: str) -> None:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.integer):
        raise CircuitError(f"{what} must be integers, got {a.dtype}")
    if a.size and (a.min() < low or a.max() > high):
        raise CircuitError(f"{what} must lie in [{low}, {high}]")
