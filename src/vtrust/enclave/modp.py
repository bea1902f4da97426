"""Arithmetic mod p = 2^24 − 3, Slalom's prime: small enough that a product of a field
element and an 8-bit weight, summed over thousands of terms, is exact in float64, so
the untrusted host's products run on ordinary BLAS. Elements travel as int32 (half the
bytes across the enclave boundary and through Freivalds' check); arithmetic is int64."""

from __future__ import annotations

import numba
import numpy as np

from vtrust.errors import InputError
from vtrust.keystream import KeyStream

P = 16_777_213  # 2^24 − 3 (prime)
_EXACT = 1 << 53
_DOT_CHUNK = 1 << 14  # int64 dot products of < 2^24 · < 2^24 terms stay exact this long


def random(stream: KeyStream, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform elements of F_p (int32) from a cryptographic stream."""
    return stream.below(P, shape).astype(np.int32)


def reduce(a: np.ndarray) -> np.ndarray:
    """Integers (any sign) to their representatives in [0, p), int32."""
    return np.mod(np.asarray(a, dtype=np.int64), P).astype(np.int32)


@numba.vectorize(["int32(int64)"], nopython=True)
def wrap(v):
    """Integers in (−p, 2p) to their representatives in [0, p), int32: one conditional
    add or subtract instead of a division (sums of an element and a small integer)."""
    if v >= P:
        return v - P
    if v < 0:
        return v + P
    return v


@numba.vectorize(["int64(int64, int64)"], nopython=True)
def centered_difference(a, b):
    """(a − b) mod p read as an integer in (−p/2, p/2), for a, b in [0, p)."""
    d = a - b
    if d < 0:
        d += P
    if d > P // 2:
        d -= P
    return d


def signed(a: np.ndarray) -> np.ndarray:
    """Representatives read as integers in (−p/2, p/2)."""
    a = np.asarray(a, dtype=np.int64)
    return np.where(a > P // 2, a - P, a)


class Weights:
    """A small signed integer matrix w (m, k) prepared for :func:`matmul`: transposed
    to float64 once, with the inner-dimension chunk that keeps float64 sums exact."""

    def __init__(self, w: np.ndarray) -> None:
        w = np.asarray(w)
        if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
            raise InputError(f"weights are a 2-D integer array, got {w.dtype} {w.shape}")
        bound = max(1, int(np.abs(w).max(initial=0)))
        self.chunk = max(1, (_EXACT // (P * bound)) - 1)
        self.floats = np.ascontiguousarray(w.T, dtype=np.float64)  # (k, m)
        self.shape = w.shape


def matmul(x: np.ndarray, w: np.ndarray | Weights) -> np.ndarray:
    """``x @ w.T mod p`` for field elements x (n, k) and small signed integers w (m, k):
    exact float64 products, the inner dimension chunked when needed."""
    x = np.asarray(x)
    prepared = w if isinstance(w, Weights) else Weights(w)
    if x.ndim != 2 or x.shape[1] != prepared.shape[1]:
        raise InputError(f"cannot multiply shapes {x.shape} and {prepared.shape[::-1]}")
    xf = x.astype(np.float64)
    if x.shape[1] <= prepared.chunk:
        return np.mod(xf @ prepared.floats, P).astype(np.int32)
    out = np.zeros((x.shape[0], prepared.shape[0]), dtype=np.int64)
    for start in range(0, x.shape[1], prepared.chunk):
        stop = start + prepared.chunk
        part = xf[:, start:stop] @ prepared.floats[start:stop]
        out = np.mod(out + np.mod(part, P).astype(np.int64), P)
    return out.astype(np.int32)


@numba.njit
def _matvecs(a, vs):
    """(a @ vs.T) mod p for a (n, m), vs (r, m), and whether every entry of a is in
    [0, p); m ≤ _DOT_CHUNK keeps the int64 sums exact."""
    n, m = a.shape
    out = np.empty((n, vs.shape[0]), dtype=np.int64)
    in_range = True
    for i in range(n):
        for j in range(m):
            if a[i, j] < 0 or a[i, j] >= P:
                in_range = False
        for q in range(vs.shape[0]):
            acc = np.int64(0)
            for j in range(m):
                acc += a[i, j] * vs[q, j]
            out[i, q] = acc % P
    return out, in_range


def matvecs(a: np.ndarray, vs: np.ndarray) -> np.ndarray:
    """``a @ v mod p`` for each row v of ``vs`` (r, m), as the columns of an (n, r) array;
    one pass over ``a`` serves every vector. :class:`InputError` if an entry of ``a`` is
    not a field element (checked in the same pass)."""
    a = np.ascontiguousarray(a)
    if a.dtype not in (np.int32, np.int64):
        a = a.astype(np.int64)
    vs = np.ascontiguousarray(vs, dtype=np.int64)
    if a.ndim != 2 or vs.ndim != 2 or vs.shape[1] != a.shape[1]:
        raise InputError(f"cannot multiply shapes {a.shape} and {vs.T.shape}")
    out = np.zeros((a.shape[0], vs.shape[0]), dtype=np.int64)
    for start in range(0, a.shape[1], _DOT_CHUNK):
        stop = start + _DOT_CHUNK
        # contiguous pieces: numba compiles a faster (vectorised) loop for C layout
        whole = start == 0 and stop >= a.shape[1]
        a_part = a if whole else np.ascontiguousarray(a[:, start:stop])
        v_part = vs if whole else np.ascontiguousarray(vs[:, start:stop])
        part, in_range = _matvecs(a_part, v_part)
        if not in_range:
            raise InputError("matrix entries must be field elements in [0, p)")
        out = (out + part) % P
    return out


def matvec(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``a @ v mod p`` for elements a (n, m) and v (m,) of F_p."""
    v = np.asarray(v)
    if v.ndim != 1:
        raise InputError(f"a vector has one dimension, got shape {v.shape}")
    return matvecs(a, v[None, :])[:, 0]
