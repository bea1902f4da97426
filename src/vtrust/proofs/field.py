"""Arithmetic in the prime field F_p, p = 2^61 − 1 (a Mersenne prime), on ``uint64``
numpy arrays holding canonical representatives in [0, p).

galois handles this prime only through Python-object arrays, far too slow for proving
networks, so the hot paths here are:

* elementwise products: numba kernels taking the full 128-bit product (one machine
  multiply through an LLVM intrinsic) and folding it with 2^61 ≡ 1;
* matrix products: exact float64 BLAS on 21-bit limbs (each limb product is below 2^42,
  so sums of up to 2^11 = 2048 of them stay below 2^53 and are exact; longer inner
  dimensions are chunked), recombined with shifts mod p;
* multilinear extensions (MLEs): tables of ``eq(r, ·)`` and folding one variable at a
  time, as numba loops.

Index convention for MLEs: a table of length 2^m is the function on {0,1}^m whose
variable j is bit j of the index (least significant first). A row-major matrix with
2^a rows and 2^b columns is thus the MLE whose first b variables index the column and
whose last a index the row.

galois stays the reference in the property tests.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from vtrust.errors import InputError

P = (1 << 61) - 1
_P = np.uint64(P)
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S61 = np.uint64(61)
_S3 = np.uint64(3)
LIMB_BITS = 21
_LIMB_MASK = (1 << LIMB_BITS) - 1
MAX_EXACT_INNER = 1 << 11  # 21-bit × 21-bit products summed exactly in float64


def elements(values) -> np.ndarray:
    """Integers (any sign, Python ints or integer arrays) as canonical field elements."""
    arr = np.asarray(values)
    if arr.dtype == object:
        return np.array([int(v) % P for v in arr.ravel()], dtype=np.uint64).reshape(arr.shape)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"field elements must be integers, got dtype {arr.dtype}")
    if arr.dtype == np.uint64:
        return np.where(arr >= _P, arr % _P, arr).astype(np.uint64)
    signed = arr.astype(np.int64)
    return np.where(
        signed < 0, _P - (-signed).astype(np.uint64) % _P, signed.astype(np.uint64) % _P
    )


def signed(a: np.ndarray) -> np.ndarray:
    """Field elements read as integers in (−p/2, p/2) (the inverse of :func:`elements`
    for values that did not wrap around)."""
    a = np.asarray(a, dtype=np.uint64)
    half = _P >> np.uint64(1)
    return np.where(a > half, -((_P - a).astype(np.int64)), a.astype(np.int64))


@numba.njit
def _zigzag(a):
    """Each element's signed representative v ∈ (−p/2, p/2) as 2v (v ≥ 0) or −2v − 1
    (v < 0), and the largest of them."""
    out = np.empty(a.shape[0], dtype=np.uint64)
    half = _P >> np.uint64(1)
    top = np.uint64(0)
    for i in range(a.shape[0]):
        v = a[i]
        z = v << np.uint64(1) if v <= half else ((_P - v) << np.uint64(1)) - np.uint64(1)
        out[i] = z
        if z > top:
            top = z
    return out, top


def compact_bytes(a: np.ndarray) -> bytes:
    """Canonical bytes of field elements, short when they are small integers of either
    sign (quantised inputs): one width byte w ∈ {1, 2, 4, 8}, then every element's
    zigzag code (2v for v ≥ 0, −2v − 1 for v < 0, v its signed representative) in w
    little-endian bytes. Injective for arrays of one length; hashing it instead of raw
    uint64 saves most of the Fiat–Shamir statement's cost."""
    codes, top = _zigzag(np.ascontiguousarray(a, dtype=np.uint64).ravel())
    width = next(w for w in (1, 2, 4, 8) if int(top) < 1 << (8 * w))
    return bytes([width]) + codes.astype(f"<u{width}").tobytes()


def check(a: np.ndarray, what: str = "value") -> np.ndarray:
    """``a`` as a uint64 array of canonical elements, or :class:`InputError`."""
    arr = np.asarray(a)
    if arr.dtype != np.uint64:
        raise InputError(f"{what}: field elements must be uint64, got {arr.dtype}")
    if arr.size and int(arr.max()) >= P:
        raise InputError(f"{what}: element out of range [0, 2^61 − 1)")
    return arr


# -- scalar kernels (numba) ------------------------------------------------------------
@numba.njit(inline="always")
def _reduce(x):
    """x < 2^64 → x mod p (one fold, one conditional subtraction)."""
    x = (x & _P) + (x >> _S61)
    if x >= _P:
        x -= _P
    return x


@intrinsic
def _mul_wide(typingctx, a, b):
    """The full 128-bit product of two uint64 values as (high, low) words: one machine
    multiply (LLVM lowers ``mul i128`` to ``mul``/``umulh``), where splitting into 32-bit
    halves needs four."""
    signature = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, sig, args):
        wide = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        low = builder.trunc(product, ir.IntType(64))
        high = builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), ir.IntType(64))
        return context.make_tuple(builder, sig.return_type, (high, low))

    return signature, codegen


@numba.njit(inline="always")
def _mulmod(a, b):
    # a·b = high·2^64 + low with high < 2^58; 2^64 ≡ 2^3 and 2^61 ≡ 1 (mod p)
    high, low = _mul_wide(a, b)
    return _reduce((low & _P) + (low >> _S61) + (high << _S3))  # < 3·2^61 < 2^64


@numba.njit(inline="always")
def _addmod(a, b):
    s = a + b
    return s - _P if s >= _P else s


@numba.njit(inline="always")
def _submod(a, b):
    return a - b if a >= b else a + _P - b


@numba.vectorize(["uint64(uint64, uint64)"], nopython=True)
def mul(a, b):
    """Elementwise product (broadcasting ufunc)."""
    return _mulmod(a, b)


@numba.vectorize(["uint64(uint64, uint64)"], nopython=True)
def add(a, b):
    """Elementwise sum (broadcasting ufunc)."""
    return _addmod(a, b)


@numba.vectorize(["uint64(uint64, uint64)"], nopython=True)
def sub(a, b):
    """Elementwise difference (broadcasting ufunc)."""
    return _submod(a, b)


def neg(a: np.ndarray) -> np.ndarray:
    return sub(np.zeros_like(a), a)


@numba.njit
def _sum(a):
    # split into halves so uint64 accumulators cannot overflow (2^31 terms of < 2^31)
    lo = np.uint64(0)
    hi = np.uint64(0)
    for x in a:
        lo += x & _MASK32
        hi += x >> _S32
    # value = hi·2^32 + lo; reduce each then combine
    hi = _reduce(hi)
    return _addmod(_mulmod(hi, np.uint64(1) << _S32), _reduce(lo))


def total(a: np.ndarray) -> np.uint64:
    """Sum of all elements of ``a`` mod p."""
    return np.uint64(_sum(np.ascontiguousarray(a, dtype=np.uint64).ravel()))


def inner(a: np.ndarray, b: np.ndarray) -> np.uint64:
    """Inner product of two vectors."""
    return total(mul(a, b))


def power(a: int, e: int) -> np.uint64:
    return np.uint64(pow(int(a), int(e), P))


def inverse(a: int) -> np.uint64:
    if int(a) % P == 0:
        raise InputError("zero has no inverse")
    return np.uint64(pow(int(a), P - 2, P))


# -- matrix products ---------------------------------------------------------------------
def _limbs(a: np.ndarray, count: int = 3) -> list[np.ndarray]:
    return [
        ((a >> np.uint64(LIMB_BITS * i)) & np.uint64(_LIMB_MASK)).astype(np.float64)
        for i in range(count)
    ]


def _exact(products: np.ndarray) -> np.ndarray:
    """float64 holding exact non-negative integers < 2^53 → field elements."""
    return products.astype(np.uint64) % _P


def _shifted(a: np.ndarray, bits: int) -> np.ndarray:
    """a·2^bits mod p."""
    return mul(a, np.uint64(pow(2, bits, P)))


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Field matrix product of (n, k) and (k, m) arrays of elements."""
    a = np.ascontiguousarray(a, dtype=np.uint64)
    b = np.ascontiguousarray(b, dtype=np.uint64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise InputError(f"cannot multiply shapes {a.shape} and {b.shape}")
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.uint64)
    for start in range(0, a.shape[1], MAX_EXACT_INNER):
        stop = start + MAX_EXACT_INNER
        la, lb = _limbs(a[:, start:stop]), _limbs(b[start:stop])
        for shift in range(5):  # limb i of a times limb j of b has weight 2^(21 (i + j))
            part = None
            for i in range(3):
                j = shift - i
                if 0 <= j < 3:
                    prod = _exact(la[i] @ lb[j])
                    part = prod if part is None else add(part, prod)
            out = add(out, _shifted(part, LIMB_BITS * shift))
    return out


class SmallMatrix:
    """A small signed integer matrix (k, m) prepared for :func:`matmul_small`: as float64
    and with the inner-dimension chunk that keeps float64 sums exact."""

    def __init__(self, w: np.ndarray) -> None:
        w = np.asarray(w)
        if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
            raise InputError(f"a small matrix is a 2-D integer array, got {w.dtype} {w.shape}")
        bound = int(np.abs(w).max()) if w.size else 0
        self.chunk = max(1, (1 << (53 - LIMB_BITS)) // max(bound, 1) - 1)
        self.floats = np.ascontiguousarray(w, dtype=np.float64)
        self.shape = w.shape


def matmul_small(a: np.ndarray, w: np.ndarray | SmallMatrix) -> np.ndarray:
    """Field elements (n, k) times a small signed integer matrix (k, m): three float64
    products instead of nine. Exact while k · 2^21 · max|w| < 2^53 (longer inner
    dimensions are chunked)."""
    a = np.ascontiguousarray(a, dtype=np.uint64)
    small = w if isinstance(w, SmallMatrix) else SmallMatrix(w)
    if a.ndim != 2 or a.shape[1] != small.shape[0]:
        raise InputError(f"cannot multiply shapes {a.shape} and {small.shape}")
    chunk, wf = small.chunk, small.floats
    n = a.shape[0]
    out = np.zeros((n, small.shape[1]), dtype=np.uint64)
    for start in range(0, a.shape[1], chunk):
        stop = start + chunk
        stacked = np.concatenate(_limbs(a[:, start:stop]))  # (3n, k): one product reads w once
        exact = (stacked @ wf[start:stop]).reshape(3, n, -1)
        out = _combine_limbs(exact, out)
    return out


_LIMB_WEIGHTS = (np.uint64(1), np.uint64(1 << LIMB_BITS), np.uint64(pow(2, 2 * LIMB_BITS, P)))


@numba.njit
def _signed_element(v):
    """An exact integer held in a float64 (|v| < 2^53) as a field element."""
    i = np.int64(v)
    if i < 0:
        return _P - np.uint64(-i)
    return np.uint64(i)


@numba.njit
def _combine_limbs(exact, acc):
    """acc + exact[0] + exact[1]·2^21 + exact[2]·2^42 (mod p), elementwise."""
    _, n, m = exact.shape
    out = np.empty((n, m), dtype=np.uint64)
    w1 = _LIMB_WEIGHTS[1]
    w2 = _LIMB_WEIGHTS[2]
    for i in range(n):
        for j in range(m):
            v = _addmod(acc[i, j], _signed_element(exact[0, i, j]))
            v = _addmod(v, _mulmod(_signed_element(exact[1, i, j]), w1))
            out[i, j] = _addmod(v, _mulmod(_signed_element(exact[2, i, j]), w2))
    return out


@numba.njit
def _vecmat(v, m):
    out = np.zeros(m.shape[1], dtype=np.uint64)
    for i in range(m.shape[0]):
        vi = v[i]
        if vi == 0:
            continue
        for j in range(m.shape[1]):
            out[j] = _addmod(out[j], _mulmod(vi, m[i, j]))
    return out


def vecmat(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The row vector ``v`` (n,) times the field matrix ``m`` (n, k)."""
    v = np.ascontiguousarray(v, dtype=np.uint64)
    m = np.ascontiguousarray(m, dtype=np.uint64)
    if v.ndim != 1 or m.ndim != 2 or len(v) != m.shape[0]:
        raise InputError(f"cannot multiply shapes {v.shape} and {m.shape}")
    return _vecmat(v, m)


# -- multilinear extensions ----------------------------------------------------------------
@numba.njit
def _fold(table, r):
    out = np.empty(table.shape[0] // 2, dtype=np.uint64)
    for i in range(out.shape[0]):
        lo = table[2 * i]
        out[i] = _addmod(lo, _mulmod(r, _submod(table[2 * i + 1], lo)))
    return out


def fold(table: np.ndarray, r) -> np.ndarray:
    """Fix the first (lowest-bit) variable of an MLE table to ``r``: length halves."""
    table = np.ascontiguousarray(table, dtype=np.uint64)
    if table.ndim != 1 or len(table) < 2 or len(table) & (len(table) - 1):
        raise InputError(f"an MLE table has a power-of-two length ≥ 2, got {table.shape}")
    return _fold(table, np.uint64(r))


def mle(table: np.ndarray, point) -> np.uint64:
    """The MLE of ``table`` (length 2^m) at ``point`` (m elements, lowest bit first)."""
    table = np.ascontiguousarray(table, dtype=np.uint64).ravel()
    point = list(point)
    if len(table) != 1 << len(point):
        raise InputError(
            f"table of length {len(table)} needs {len(table).bit_length() - 1} "
            f"coordinates, got {len(point)}"
        )
    for r in point:
        table = fold(table, r)
    return np.uint64(table[0])


@numba.njit
def _eq_table(point):
    m = point.shape[0]
    out = np.empty(1 << m, dtype=np.uint64)
    out[0] = np.uint64(1)
    size = 1
    for j in range(m):  # variable j is index bit j
        r = point[j]
        for i in range(size):
            v = out[i]
            hi = _mulmod(v, r)
            out[i + size] = hi
            out[i] = _submod(v, hi)
        size *= 2
    return out


def eq_table(point) -> np.ndarray:
    """``eq(point, x)`` for every x ∈ {0,1}^m, indexed as MLE tables are; then
    ``mle(t, point) == inner(t, eq_table(point))``."""
    return _eq_table(np.asarray(point, dtype=np.uint64).reshape(-1))


def pad_pow2(n: int) -> int:
    """The smallest power of two ≥ n (≥ 1)."""
    return 1 << max(0, (int(n) - 1).bit_length())
