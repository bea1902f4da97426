"""Layered arithmetic circuits for quantised polynomial networks.

A :class:`Circuit` is a sequence of :class:`Linear` layers (small signed integer weight
matrix plus a bias of field elements) and :class:`Square` layers, over a batch; every
dimension is padded to a power of two with zeros. Its forward pass runs over F_p and
keeps every layer's values, which the prover needs.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from vtrust.errors import InputError
from vtrust.proofs import field as F


@dataclass(frozen=True)
class Linear:
    """``z = x Wᵀ + b``: ``weight`` (n_out, n_in) small signed integers, ``bias`` (n_out,)
    field elements; both padded to powers of two."""

    weight: np.ndarray
    bias: np.ndarray

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class Square:
    """``y = z ∘ z`` elementwise."""

    size: int


Layer = Linear | Square


@dataclass(frozen=True)
class Circuit:
    """A layered circuit: inputs (batch, n_inputs) → outputs (batch, n_outputs).

    Attributes:
        layers: in forward order.
        batch: padded batch size (a power of two).
        n_inputs / n_outputs: real (unpadded) input and output widths.
    """

    layers: tuple[Layer, ...]
    batch: int
    n_inputs: int
    n_outputs: int

    def __post_init__(self) -> None:
        if self.batch & (self.batch - 1) or self.batch < 1:
            raise InputError(f"the batch must be a power of two, got {self.batch}")
        width = self.input_width
        for layer in self.layers:
            if isinstance(layer, Linear):
                if layer.n_in != width or layer.bias.shape != (layer.n_out,):
                    raise InputError("circuit layers do not chain")
                width = layer.n_out
            elif layer.size != width:
                raise InputError("circuit layers do not chain")

    @property
    def input_width(self) -> int:
        first = self.layers[0]
        return first.n_in if isinstance(first, Linear) else first.size

    @property
    def output_width(self) -> int:
        last = self.layers[-1]
        return last.n_out if isinstance(last, Linear) else last.size

    def pad_inputs(self, x: np.ndarray) -> np.ndarray:
        """Field inputs (n ≤ batch, n_inputs) zero-padded to (batch, input_width)."""
        x = F.check(np.asarray(x), "inputs")
        if x.ndim != 2 or x.shape[1] != self.n_inputs or not 1 <= len(x) <= self.batch:
            raise InputError(
                f"inputs must have shape (1..{self.batch}, {self.n_inputs}), got {x.shape}"
            )
        out = np.zeros((self.batch, self.input_width), dtype=np.uint64)
        out[: len(x), : self.n_inputs] = x
        return out

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's values over F_p for padded inputs ``x``: ``[x, v1, …, vL]``."""
        values = [x]
        for layer, wt in zip(self.layers, self.transposed_weights, strict=True):
            v = values[-1]
            if isinstance(layer, Linear):
                values.append(F.add(F.matmul_small(v, wt), layer.bias[None, :]))
            else:
                values.append(F.mul(v, v))
        return values

    @functools.cached_property
    def prepared_weights(self) -> list[F.SmallMatrix | None]:
        """Each Linear layer's weights prepared for products with field rows."""
        return [F.SmallMatrix(x.weight) if isinstance(x, Linear) else None for x in self.layers]

    @functools.cached_property
    def transposed_weights(self) -> list[F.SmallMatrix | None]:
        """Each Linear layer's ``Wᵀ`` prepared (the forward pass multiplies by it)."""
        return [F.SmallMatrix(x.weight.T) if isinstance(x, Linear) else None for x in self.layers]

    def sha256(self) -> str:
        """Hash of the circuit's structure, weights and biases (canonical bytes);
        computed once per circuit object."""
        return self._digest

    @functools.cached_property
    def _digest(self) -> str:
        h = hashlib.sha256(b"vtrust-circuit/1")
        h.update(np.array([self.batch, self.n_inputs, self.n_outputs], "<i8").tobytes())
        for layer in self.layers:
            if isinstance(layer, Linear):
                h.update(b"L" + np.array(layer.weight.shape, "<i8").tobytes())
                h.update(np.ascontiguousarray(layer.weight, "<i8").tobytes())
                h.update(np.ascontiguousarray(layer.bias, "<u8").tobytes())
            else:
                h.update(b"S" + np.array([layer.size], "<i8").tobytes())
        return h.hexdigest()


def pad_matrix(w: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), dtype=w.dtype)
    out[: w.shape[0], : w.shape[1]] = w
    return out


def pad_vector(v: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=v.dtype)
    out[: len(v)] = v
    return out
