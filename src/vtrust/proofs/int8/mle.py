"""The verifier's evaluations of a linear layer's (scaled) accumulators at a point,
from the weights and the int8 inputs it holds — without computing the layer.

Layout: a layer's accumulators over a batch are the tensor (N, O) (dense) or
(N, O, H', W') (convolution), every dimension zero-padded to a power of two and
flattened row-major; as an MLE its variables are the index bits, lowest first — so a
point lists the column (W') coordinates, then H', then O, then the batch.

For a point (s_j, s_i, s_o, s_n) and per-channel multipliers M (1 for the outputs), the
MLE of M·acc is, with eq tables restricted to the real index range,

    Σ_{c,u,v} W̄[c,u,v] · Σ_{i,j} eq(s_i, i) eq(s_j, j) X̄[c, i·st + u, j·st + v]
      + b̄ · Σ_n eq(s_n, n) · Σ_i eq(s_i, i) · Σ_j eq(s_j, j),

W̄ = Σ_o eq(s_o, o) M_o W_o and b̄ = Σ_o eq(s_o, o) M_o b_o, X̄ = Σ_n eq(s_n, n) X_n (the
zero-padded input). The cost is one pass over the weights (as for the x² circuits'
W̃ evaluations), one over the input, and a separable correlation of C·kh·kw·(H_p·W' +
H') products: a convolution is never unrolled into a matrix, and no output channel is
ever summed over an input.
"""

from __future__ import annotations

import numpy as np

from vtrust.proofs import ext as X
from vtrust.proofs import field as F
from vtrust.proofs._jit import kernel
from vtrust.proofs.ext import _lmul
from vtrust.proofs.field import _addmod
from vtrust.proofs.int8.network import Conv, Dense


def pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def padded_dims(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Every dimension rounded up to a power of two."""
    return tuple(pow2(d) for d in shape)


def bits(n: int) -> int:
    return pow2(n).bit_length() - 1


def split_point(point: list[X.Ext], dims: tuple[int, ...]) -> list[list[X.Ext]]:
    """A point over the padded tensor ``dims`` (row-major) split per dimension, outermost
    first (each its own coordinates, lowest first)."""
    out, start = [], 0
    for d in reversed(dims):
        b = bits(d)
        out.append(list(point[start : start + b]))
        start += b
    if start != len(point):
        raise ValueError(f"a point of {len(point)} coordinates for dims {dims}")
    return out[::-1]


def _eq(point: list[X.Ext], real: int) -> X.Pair:
    re, im = X.eq_table(point)
    return np.ascontiguousarray(re[:real]), np.ascontiguousarray(im[:real])


def _total(table: X.Pair) -> X.Ext:
    return (int(F.total(table[0])), int(F.total(table[1])))


def _scaled(table: X.Pair, factors: np.ndarray) -> X.Pair:
    f = F.elements(factors)
    return F.mul(table[0], f), F.mul(table[1], f)


_ROW_CHUNK = ((1 << 22) - 1) // 127  # rows whose 31-bit limb × int8 sums stay exact


def weights_row(v: X.Pair, weight: np.ndarray) -> X.Pair:
    """The extension row vector v (O,) times the int8 weights viewed as (O, rest): one
    pass over the weights, one byte each."""
    w = weight.reshape(len(weight), -1)
    if len(w) * 127 >= 1 << 31:
        raise ValueError("too many output rows for exact int64 totals")
    return F._vecmat_narrow(v[0], w, _ROW_CHUNK), F._vecmat_narrow(v[1], w, _ROW_CHUNK)


def linear_mle(
    layer: Conv | Dense,
    x: np.ndarray,
    multipliers: np.ndarray,
    point: list[X.Ext],
    out_shape: tuple[int, ...],
) -> X.Ext:
    """The MLE of M·acc (padded (N, *out_shape)) at ``point``, for int inputs x (N, …)."""
    n = len(x)
    dims = padded_dims((n, *out_shape))
    parts = split_point(point, dims)
    eq_n, eq_o = _eq(parts[0], n), _eq(parts[1], out_shape[0])
    weighted = _scaled(eq_o, multipliers)  # eq(s_o, o)·M_o
    w_bar = weights_row(weighted, layer.weight)
    b_bar = X.inner_base(F.elements(layer.bias), weighted)
    batch = _total(eq_n)
    x_field = F.elements(x.reshape(n, -1))
    if isinstance(layer, Dense):
        x_bar = X.vecmat(eq_n, x_field)
        return X.add(X.inner(w_bar, x_bar), X.mul(b_bar, batch))
    _, h_out, w_out = out_shape
    eq_i, eq_j = _eq(parts[2], h_out), _eq(parts[3], w_out)
    p = layer.padding
    xp = np.zeros((n, x.shape[1], x.shape[2] + 2 * p, x.shape[3] + 2 * p), dtype=np.uint64)
    xp[:, :, p : p + x.shape[2], p : p + x.shape[3]] = x_field.reshape(x.shape)
    x_bar = X.vecmat(eq_n, xp.reshape(n, -1))
    c, kh, kw = layer.weight.shape[1:]
    total = _correlate(*x_bar, xp.shape[2], xp.shape[3], *eq_i, *eq_j, *w_bar, c, kh, kw,
                       layer.stride)  # fmt: skip
    bias_term = X.mul(X.mul(b_bar, batch), X.mul(_total(eq_i), _total(eq_j)))
    return X.add((int(total[0]), int(total[1])), bias_term)


@kernel
def _correlate(xr, xi, hp, wp, ir, ii, jr, ji, wr, wi, channels, kh, kw, stride):
    """Σ_{c,u,v} W̄[c,u,v] Σ_i eq_i Σ_j eq_j X̄[c, i·st+u, j·st+v] (all F_{p^2})."""
    h_out, w_out = ir.shape[0], jr.shape[0]
    total_r, total_i = np.uint64(0), np.uint64(0)
    row_r = np.empty(hp * kw, dtype=np.uint64)
    row_i = np.empty(hp * kw, dtype=np.uint64)
    for c in range(channels):
        base = c * hp * wp
        for r in range(hp):  # R[r, v] = Σ_j eq_j X̄[c, r, j·st + v]
            for v in range(kw):
                ar, ai = np.uint64(0), np.uint64(0)
                for j in range(w_out):
                    k = base + r * wp + j * stride + v
                    pr, pi = _lmul(jr[j], ji[j], xr[k], xi[k])
                    ar, ai = _addmod(ar, pr), _addmod(ai, pi)
                row_r[r * kw + v], row_i[r * kw + v] = ar, ai
        for u in range(kh):
            for v in range(kw):
                sr, si = np.uint64(0), np.uint64(0)
                for i in range(h_out):
                    k = (i * stride + u) * kw + v
                    pr, pi = _lmul(ir[i], ii[i], row_r[k], row_i[k])
                    sr, si = _addmod(sr, pr), _addmod(si, pi)
                w_index = (c * kh + u) * kw + v
                pr, pi = _lmul(wr[w_index], wi[w_index], sr, si)
                total_r, total_i = _addmod(total_r, pr), _addmod(total_i, pi)
    return total_r, total_i


def tensor_mle(values: np.ndarray, point: list[X.Ext]) -> X.Ext:
    """The MLE of an integer tensor (N, …) zero-padded per dimension, at ``point``."""
    dims = padded_dims(values.shape)
    padded = np.zeros(dims, dtype=np.uint64)
    padded[tuple(slice(0, d) for d in values.shape)] = F.elements(values)
    return X.mle_base(padded.ravel(), point)
