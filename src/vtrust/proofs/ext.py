"""The quadratic extension F_{p^2} = F_p[i] / (i² + 1), p = 2^61 − 1, where the proofs
draw their challenges.

Since p ≡ 3 (mod 4), −1 is not a square mod p and i² = −1 defines the field of p² ≈ 2^122
elements. A sum-check round of degree d is then fooled by a random challenge with
probability d/p² instead of d/p, which takes the Fiat–Shamir security level from ≈ 59 to
≈ 120 bits (a grinding prover needs ≈ p²/d hashes per round, not p/d); the circuit, the
inputs and the outputs stay in F_p.

Scalars are pairs ``(re, im)`` of Python ints in [0, p). Arrays are pairs of uint64
arrays (:class:`Pair`); a base-field array is the pair with a zero imaginary part, but
the kernels take ``None`` for it and skip that half of the work.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from vtrust.proofs import field as F
from vtrust.proofs._jit import kernel
from vtrust.proofs.field import _addmod, _mulmod, _submod
from vtrust.proofs.field import _mulmod_lanes as _lane

P = F.P
Ext = tuple[int, int]
Pair = tuple[np.ndarray, np.ndarray]
ZERO: Ext = (0, 0)
ONE: Ext = (1, 0)


# -- scalars ---------------------------------------------------------------------------
def lift(a: int) -> Ext:
    return (int(a) % P, 0)


def add(x: Ext, y: Ext) -> Ext:
    return ((x[0] + y[0]) % P, (x[1] + y[1]) % P)


def sub(x: Ext, y: Ext) -> Ext:
    return ((x[0] - y[0]) % P, (x[1] - y[1]) % P)


def mul(x: Ext, y: Ext) -> Ext:
    a, b = x
    c, d = y
    return ((a * c - b * d) % P, (a * d + b * c) % P)


def scale(x: Ext, k: int) -> Ext:
    return (x[0] * k % P, x[1] * k % P)


def inverse(x: Ext) -> Ext:
    """1/x = conj(x) / |x|² (|x|² = a² + b² ≠ 0 in F_p for x ≠ 0, as −1 is no square)."""
    a, b = x
    norm = (a * a + b * b) % P
    if norm == 0:
        raise ZeroDivisionError("zero has no inverse")
    n = pow(norm, P - 2, P)
    return (a * n % P, -b * n % P)


def batch_inverse(values: list[Ext]) -> list[Ext]:
    """Every nonzero value's inverse (zeros stay zero) with one inversion."""
    prefix, running = [], ONE
    for v in values:
        prefix.append(running)
        if v != ZERO:
            running = mul(running, v)
    inv = inverse(running)
    out = [ZERO] * len(values)
    for k in range(len(values) - 1, -1, -1):
        if values[k] != ZERO:
            out[k] = mul(inv, prefix[k])
            inv = mul(inv, values[k])
    return out


def eq_factor(q: Ext, t: Ext) -> Ext:
    """eq(q, t) = q·t + (1 − q)(1 − t) for one variable."""
    one_q, one_t = sub(ONE, q), sub(ONE, t)
    return add(mul(q, t), mul(one_q, one_t))


def eq_value(a: list[Ext], b: list[Ext]) -> Ext:
    out = ONE
    for x, y in zip(a, b, strict=True):
        out = mul(out, eq_factor(x, y))
    return out


@functools.cache
def _lagrange_denominators(n: int) -> tuple[int, ...]:
    """1 / Π_{j≠i} (i − j) for the nodes 0..n−1."""
    out = []
    for i in range(n):
        den = 1
        for j in range(n):
            if j != i:
                den = den * (i - j) % P
        out.append(pow(den, P - 2, P))
    return tuple(out)


def interpolate(values: list[Ext], r: Ext) -> Ext:
    """The polynomial of degree < len(values) through (t, values[t]), t = 0, 1, …, at r
    (the nodes are in F_p; the Lagrange denominators are base-field constants)."""
    n = len(values)
    total = ZERO
    for k, (y, inv_den) in enumerate(zip(values, _lagrange_denominators(n), strict=True)):
        num = lift(inv_den)
        for j in range(n):
            if j != k:
                num = mul(num, sub(r, lift(j)))
        total = add(total, mul(y, num))
    return total


def flat(values: list[Ext]) -> list[int]:
    """Scalars as the flat integer list messages carry: re0, im0, re1, im1, …"""
    return [int(c) for v in values for c in v]


def unflat(values: list[int]) -> list[Ext]:
    return [(int(values[2 * k]), int(values[2 * k + 1])) for k in range(len(values) // 2)]


# -- array kernels ---------------------------------------------------------------------
@numba.njit(inline="always")
def _mul(a, b, c, d):
    """(a + b i)(c + d i)."""
    return _submod(_mulmod(a, c), _mulmod(b, d)), _addmod(_mulmod(a, d), _mulmod(b, c))


@numba.njit(inline="always")
def _lmul(a, b, c, d):
    """(a + b i)(c + d i) from three vectorisable products (Karatsuba):
    re = c(a + b) − b(c + d), im = c(a + b) + a(d − c)."""
    k1 = _lane(c, _addmod(a, b))
    return _submod(k1, _lane(b, _addmod(c, d))), _addmod(k1, _lane(a, _submod(d, c)))


@kernel
def _eq_table(re, im):
    m = re.shape[0]
    out_re = np.empty(1 << m, dtype=np.uint64)
    out_im = np.empty(1 << m, dtype=np.uint64)
    out_re[0], out_im[0] = np.uint64(1), np.uint64(0)
    size = 1
    for j in range(m):  # variable j is index bit j
        for k in range(size):  # independent lanes: vectorised
            hr, hi = _lmul(out_re[k], out_im[k], re[j], im[j])
            out_re[k + size], out_im[k + size] = hr, hi
            out_re[k], out_im[k] = _submod(out_re[k], hr), _submod(out_im[k], hi)
        size *= 2
    return out_re, out_im


def eq_table(point: list[Ext]) -> Pair:
    """``eq(point, x)`` for every x ∈ {0,1}^m (lowest bit first), as two arrays."""
    re = np.array([v[0] for v in point], dtype=np.uint64)
    im = np.array([v[1] for v in point], dtype=np.uint64)
    return _eq_table(re, im)


def split_point(point: list[Ext]) -> tuple[list[int], list[int]]:
    return [v[0] for v in point], [v[1] for v in point]


def inner(a: Pair, b: Pair) -> Ext:
    """Σ a_k b_k for two extension arrays."""
    ar, ai = a
    br, bi = b
    re = F.sub(F.inner(ar, br), F.inner(ai, bi))
    im = F.add(F.inner(ar, bi), F.inner(ai, br))
    return (int(re), int(im))


def inner_base(a: np.ndarray, b: Pair) -> Ext:
    """Σ a_k b_k for a base array ``a`` and an extension array ``b``."""
    return (int(F.inner(a, b[0])), int(F.inner(a, b[1])))


def mle_base(table: np.ndarray, point: list[Ext]) -> Ext:
    """The MLE of a base-field table at an extension point."""
    return inner_base(np.ascontiguousarray(table, dtype=np.uint64).ravel(), eq_table(point))


@kernel
def _vecmat(v_re, v_im, m):
    out_re = np.zeros(m.shape[1], dtype=np.uint64)
    out_im = np.zeros(m.shape[1], dtype=np.uint64)
    for i in range(m.shape[0]):
        a, b = v_re[i], v_im[i]
        for j in range(m.shape[1]):  # independent lanes: vectorised; m is read once
            x = m[i, j]
            out_re[j] = _addmod(out_re[j], _lane(a, x))
            out_im[j] = _addmod(out_im[j], _lane(b, x))
    return out_re, out_im


def vecmat(v: Pair, m: np.ndarray) -> Pair:
    """The extension row vector ``v`` times the base matrix ``m`` (one pass over m)."""
    m = np.ascontiguousarray(m, dtype=np.uint64)
    if m.ndim != 2 or len(v[0]) != m.shape[0]:
        raise ValueError(f"cannot multiply shapes {v[0].shape} and {m.shape}")
    return _vecmat(v[0], v[1], m)


def vecmat_small(v: Pair, w: F.SmallMatrix) -> Pair:
    """The extension row vector ``v`` times a small signed integer matrix (the products
    are bound by multiply-adds, not by reading w: two passes cost what one fused would)."""
    return F.vecmat_small(v[0], w), F.vecmat_small(v[1], w)


@kernel
def _fold(t_re, t_im, r_re, r_im, stride_top):
    """Fix one variable to r: the lowest (pairs 2k, 2k+1) or, with ``stride_top``, the
    highest (k, k + half). ``t_im`` None: a base table."""
    half = t_re.shape[0] // 2
    out_re = np.empty(half, dtype=np.uint64)
    out_im = np.empty(half, dtype=np.uint64)
    for k in range(half):
        lo, hi = (k, k + half) if stride_top else (2 * k, 2 * k + 1)
        dr = _submod(t_re[hi], t_re[lo])
        if t_im is None:
            out_re[k] = _addmod(t_re[lo], _mulmod(r_re, dr))
            out_im[k] = _mulmod(r_im, dr)
        else:
            di = _submod(t_im[hi], t_im[lo])
            mr, mi = _mul(r_re, r_im, dr, di)
            out_re[k] = _addmod(t_re[lo], mr)
            out_im[k] = _addmod(t_im[lo], mi)
    return out_re, out_im


def fold(table: Pair | np.ndarray, r: Ext, *, top: bool = False) -> Pair:
    """Fix the lowest (or, with ``top``, the highest) variable of a table to ``r``."""
    re, im = (table, None) if isinstance(table, np.ndarray) else table
    return _fold(re, im, np.uint64(r[0]), np.uint64(r[1]), top)


@kernel
def _product_round(f_re, f_im, g_re, g_im):
    """Values at t = 0, 1, 2 of Σ_rest f(t, rest) g(t, rest) (lowest variable)."""
    out = np.zeros(6, dtype=np.uint64)
    two = np.uint64(2)
    for k in range(f_re.shape[0] // 2):
        a0r, a0i, a1r, a1i = f_re[2 * k], f_im[2 * k], f_re[2 * k + 1], f_im[2 * k + 1]
        b0r, b0i, b1r, b1i = g_re[2 * k], g_im[2 * k], g_re[2 * k + 1], g_im[2 * k + 1]
        a2r, a2i = _submod(_mulmod(two, a1r), a0r), _submod(_mulmod(two, a1i), a0i)
        b2r, b2i = _submod(_mulmod(two, b1r), b0r), _submod(_mulmod(two, b1i), b0i)
        pr, pi = _mul(a0r, a0i, b0r, b0i)
        out[0], out[1] = _addmod(out[0], pr), _addmod(out[1], pi)
        pr, pi = _mul(a1r, a1i, b1r, b1i)
        out[2], out[3] = _addmod(out[2], pr), _addmod(out[3], pi)
        pr, pi = _mul(a2r, a2i, b2r, b2i)
        out[4], out[5] = _addmod(out[4], pr), _addmod(out[5], pi)
    return out


def product_round(f: Pair, g: Pair) -> list[Ext]:
    return unflat(_product_round(f[0], f[1], g[0], g[1]).tolist())
