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
from vtrust.proofs._jit import kernel, ufunc

P = (1 << 61) - 1
_P = np.uint64(P)
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S61 = np.uint64(61)
_S3 = np.uint64(3)
LIMB_BITS = 21
WIDE_LIMB_BITS = 31  # two limbs hold an element; for products with small weights
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


@numba.njit(inline="always")
def _zigzag_code(v):
    """The signed representative s ∈ (−p/2, p/2) of v as 2s (s ≥ 0) or −2s − 1 (s < 0)."""
    half = _P >> np.uint64(1)
    return v << np.uint64(1) if v <= half else ((_P - v) << np.uint64(1)) - np.uint64(1)


@kernel
def _zigzag_top(a):
    top = np.uint64(0)
    for i in range(a.shape[0]):
        top = max(top, _zigzag_code(a[i]))
    return top


@kernel
def _zigzag_into(a, out):
    """Every code of ``a`` into ``out`` (an unsigned array wide enough for them)."""
    for i in range(a.shape[0]):
        out[i] = _zigzag_code(a[i])


def compact_bytes(a: np.ndarray) -> bytes:
    """Canonical bytes of field elements, short when they are small integers of either
    sign (quantised inputs): one width byte w ∈ {1, 2, 4, 8}, then every element's
    zigzag code (2v for v ≥ 0, −2v − 1 for v < 0, v its signed representative) in w
    little-endian bytes. Injective for arrays of one length; hashing it instead of raw
    uint64 saves most of the Fiat–Shamir statement's cost."""
    flat = np.ascontiguousarray(a, dtype=np.uint64).ravel()
    top = int(_zigzag_top(flat))
    width = next(w for w in (1, 2, 4, 8) if top < 1 << (8 * w))
    codes = np.empty(flat.shape[0], dtype=f"<u{width}")
    _zigzag_into(flat, codes)
    return bytes([width]) + codes.tobytes()


@kernel
def _int_zigzag_top(a):
    top = np.uint64(0)
    for i in range(a.shape[0]):
        v = a[i]
        top = max(
            top,
            np.uint64(v) << np.uint64(1)
            if v >= 0
            else (np.uint64(-v) << np.uint64(1)) - np.uint64(1),
        )
    return top


@kernel
def _int_zigzag_into(a, out):
    for i in range(a.shape[0]):
        v = a[i]
        out[i] = (
            np.uint64(v) << np.uint64(1)
            if v >= 0
            else (np.uint64(-v) << np.uint64(1)) - np.uint64(1)
        )


def compact_bytes_int(a: np.ndarray) -> bytes:
    """:func:`compact_bytes` of ``elements(a)`` for int64 integers with |v| < p/2 — the
    same bytes, without the field-element copy (for long messages of small integers)."""
    flat = np.ascontiguousarray(a, dtype=np.int64).ravel()
    if flat.size and int(np.abs(flat).max()) >= P // 2:
        raise InputError("compact_bytes_int: a value is not below p/2 in magnitude")
    top = int(_int_zigzag_top(flat))
    width = next(w for w in (1, 2, 4, 8) if top < 1 << (8 * w))
    codes = np.empty(flat.shape[0], dtype=f"<u{width}")
    _int_zigzag_into(flat, codes)
    return bytes([width]) + codes.tobytes()


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


_MASK29 = np.uint64((1 << 29) - 1)
_S29 = np.uint64(29)


@numba.njit(inline="always")
def _mulmod_lanes(a, b):
    """The same product as :func:`_mulmod` from four 32 × 32-bit multiplies, which LLVM
    vectorises (``vpmuludq``, four or eight lanes) in loops whose iterations are
    independent; there it is about twice as fast per element as the scalar 128-bit
    multiply, which no x86 vector unit has. Needs a, b < 2^61."""
    a0, a1 = a & _MASK32, a >> _S32  # a1, b1 < 2^29
    b0, b1 = b & _MASK32, b >> _S32
    low = a0 * b0  # < 2^64
    mid = a1 * b0 + a0 * b1  # < 2^62, weight 2^32: 2^32·2^29 = 2^61 ≡ 1
    high = a1 * b1  # < 2^58, weight 2^64 ≡ 2^3
    s = (high << _S3) + (mid >> _S29) + ((mid & _MASK29) << _S32) + (low >> _S61) + (low & _P)
    return _reduce(s)  # s < 3·2^61 + 2^34 < 2^64


@numba.njit(inline="always")
def _lane_split(x):
    """x < 2^64 as its low and high 32-bit halves: sums of many such halves in two
    plain uint64 accumulators cannot overflow (up to 2^32 terms) and, being plain
    additions, vectorise — a carried modular sum does not."""
    return x & _MASK32, x >> _S32


@numba.njit(inline="always")
def _lanes_total(low, high):
    """(high·2^32 + low) mod p for two accumulators of :func:`_lane_split` halves."""
    return _addmod(_mulmod(_reduce(high), np.uint64(1) << _S32), _reduce(low))


@numba.njit(inline="always")
def _addmod(a, b):
    s = a + b
    return s - _P if s >= _P else s


@numba.njit(inline="always")
def _submod(a, b):
    return a - b if a >= b else a + _P - b


@ufunc(["uint64(uint64, uint64)"])
def mul(a, b):
    """Elementwise product (broadcasting ufunc)."""
    return _mulmod_lanes(a, b)


@ufunc(["uint64(uint64, uint64)"])
def add(a, b):
    """Elementwise sum (broadcasting ufunc)."""
    return _addmod(a, b)


@ufunc(["uint64(uint64, uint64)"])
def sub(a, b):
    """Elementwise difference (broadcasting ufunc)."""
    return _submod(a, b)


def neg(a: np.ndarray) -> np.ndarray:
    return sub(np.zeros_like(a), a)


@kernel
def _sum(a):
    low = np.uint64(0)
    high = np.uint64(0)
    for x in a:
        lo, hi = _lane_split(x)
        low += lo
        high += hi
    return _lanes_total(low, high)


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


def batch_inverse(values: list[int]) -> list[int]:
    """The inverse of every nonzero value (0 for zeros) with one exponentiation
    (Montgomery's trick: prefix products, one inverse, then back to front)."""
    values = [int(v) % P for v in values]
    prefix, running = [], 1
    for v in values:
        prefix.append(running)
        if v:
            running = running * v % P
    inv = pow(running, P - 2, P)
    out = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        v = values[i]
        if v:
            out[i] = inv * prefix[i] % P
            inv = inv * v % P
    return out


# -- matrix products ---------------------------------------------------------------------
def _limbs(a: np.ndarray, count: int = 3, bits: int = LIMB_BITS) -> list[np.ndarray]:
    """``a``'s ``count`` limbs of ``bits`` bits (lowest first) as float64 arrays."""
    mask = np.uint64((1 << bits) - 1)
    return [((a >> np.uint64(bits * i)) & mask).astype(np.float64) for i in range(count)]


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
    """A small signed integer matrix (k, m) prepared for :func:`matmul_small`: as float64,
    with the limb width for the field operand and the inner-dimension chunk that keep
    float64 sums exact, and as int8/int16 for :func:`vecmat_small`."""

    def __init__(self, w: np.ndarray) -> None:
        w = np.asarray(w)
        if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
            raise InputError(f"a small matrix is a 2-D integer array, got {w.dtype} {w.shape}")
        bound = max(int(np.abs(w).max()) if w.size else 0, 1)
        k = w.shape[0]
        # two 31-bit limbs if that needs no more chunks than three 21-bit ones: a sum of
        # `chunk` products limb·w stays below 2^53 when chunk · bound < 2^(53 − bits)
        chunks = {b: max(1, ((1 << (53 - b)) - 1) // bound) for b in (WIDE_LIMB_BITS, LIMB_BITS)}
        two = -(-k // chunks[WIDE_LIMB_BITS]) <= -(-k // chunks[LIMB_BITS])
        self.limb_bits = WIDE_LIMB_BITS if two else LIMB_BITS
        self.chunk = chunks[self.limb_bits]
        self.floats = np.ascontiguousarray(w, dtype=np.float64)
        self.shape = w.shape
        # for vector products: the narrowest integer type, if the int64 totals of
        # 31-bit limbs times w stay exact (k · bound < 2^31)
        narrow = next((t for t in (np.int8, np.int16) if bound <= np.iinfo(t).max), None)
        self.narrow = w.astype(narrow) if narrow is not None and k * bound < 1 << 31 else None
        self.row_chunk = chunks[WIDE_LIMB_BITS]


def matmul_small(a: np.ndarray, w: np.ndarray | SmallMatrix) -> np.ndarray:
    """Field elements (n, k) times a small signed integer matrix (k, m): one float64
    product of a's limbs stacked — two 31-bit limbs for weights small enough (k · max|w|
    < 2^22), else three 21-bit ones — instead of limb × limb products. Inner dimensions
    too long for exact float64 sums are chunked."""
    a = np.ascontiguousarray(a, dtype=np.uint64)
    small = w if isinstance(w, SmallMatrix) else SmallMatrix(w)
    if a.ndim != 2 or a.shape[1] != small.shape[0]:
        raise InputError(f"cannot multiply shapes {a.shape} and {small.shape}")
    chunk, wf, bits = small.chunk, small.floats, small.limb_bits
    count = -(-61 // bits)
    weights = np.array([pow(2, bits * i, P) for i in range(count)], dtype=np.uint64)
    n = a.shape[0]
    out = np.zeros((n, small.shape[1]), dtype=np.uint64)
    for start in range(0, a.shape[1], chunk):
        stop = start + chunk
        stacked = np.concatenate(_limbs(a[:, start:stop], count, bits))  # reads w once
        exact = (stacked @ wf[start:stop]).reshape(count, n, -1)
        out = _combine_limbs(exact, weights, out)
    return out


_WIDE_MASK = np.uint64((1 << WIDE_LIMB_BITS) - 1)


@kernel
def _vecmat_narrow(v, w, row_chunk):
    """v (field elements) times the small integer matrix w, as the two int64 totals of
    v's 31-bit limbs times w: float64 multiply-adds (vectorised) over ``row_chunk`` rows
    at a time, where |limb · w| sums stay below 2^53, flushed to int64 in between."""
    n, m = w.shape
    total0 = np.zeros(m, dtype=np.int64)
    total1 = np.zeros(m, dtype=np.int64)
    acc0 = np.zeros(m)
    acc1 = np.zeros(m)
    for start in range(0, n, row_chunk):
        acc0[:] = 0.0
        acc1[:] = 0.0
        for i in range(start, min(n, start + row_chunk)):
            low = np.float64(v[i] & _WIDE_MASK)
            high = np.float64(v[i] >> np.uint64(WIDE_LIMB_BITS))
            for j in range(m):
                wij = np.float64(w[i, j])
                acc0[j] += low * wij
                acc1[j] += high * wij
        for j in range(m):
            total0[j] += np.int64(acc0[j])
            total1[j] += np.int64(acc1[j])
    out = np.empty(m, dtype=np.uint64)
    shift = np.uint64(1 << WIDE_LIMB_BITS)
    for j in range(m):
        out[j] = _addmod(_signed_element(total0[j]), _mulmod(_signed_element(total1[j]), shift))
    return out


def vecmat_small(v: np.ndarray, w: SmallMatrix) -> np.ndarray:
    """The row vector ``v`` (k,) of field elements times a small signed integer matrix
    (k, m): reads the weights as int8/int16 (a quarter or an eighth of the float64
    bytes :func:`matmul_small` streams); falls back to it for wider weights."""
    v = np.ascontiguousarray(v, dtype=np.uint64)
    if v.ndim != 1 or len(v) != w.shape[0]:
        raise InputError(f"cannot multiply shapes {v.shape} and {w.shape}")
    if w.narrow is None:
        return matmul_small(v[None, :], w)[0]
    return _vecmat_narrow(v, w.narrow, w.row_chunk)


@kernel
def _signed_element(v):
    """An exact integer held in a float64 (|v| < 2^53) as a field element."""
    i = np.int64(v)
    if i < 0:
        return _P - np.uint64(-i)
    return np.uint64(i)


@kernel
def _combine_limbs(exact, weights, acc):
    """acc + Σ_l exact[l]·weights[l] (mod p), elementwise; exact holds float64 integers."""
    count, n, m = exact.shape
    out = np.empty((n, m), dtype=np.uint64)
    for i in range(n):
        for j in range(m):  # independent lanes: vectorised
            v = _addmod(acc[i, j], _signed_element(exact[0, i, j]))
            for limb in range(1, count):
                v = _addmod(v, _mulmod_lanes(_signed_element(exact[limb, i, j]), weights[limb]))
            out[i, j] = v
    return out


@kernel
def _vecmat(v, m):
    out = np.zeros(m.shape[1], dtype=np.uint64)
    for i in range(m.shape[0]):
        vi = v[i]
        if vi == 0:
            continue
        for j in range(m.shape[1]):  # independent lanes: vectorised
            out[j] = _addmod(out[j], _mulmod_lanes(vi, m[i, j]))
    return out


def vecmat(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The row vector ``v`` (n,) times the field matrix ``m`` (n, k)."""
    v = np.ascontiguousarray(v, dtype=np.uint64)
    m = np.ascontiguousarray(m, dtype=np.uint64)
    if v.ndim != 1 or m.ndim != 2 or len(v) != m.shape[0]:
        raise InputError(f"cannot multiply shapes {v.shape} and {m.shape}")
    return _vecmat(v, m)


# -- multilinear extensions ----------------------------------------------------------------
@kernel
def _fold(table, r):
    out = np.empty(table.shape[0] // 2, dtype=np.uint64)
    for i in range(out.shape[0]):
        lo = table[2 * i]
        out[i] = _addmod(lo, _mulmod(r, _submod(table[2 * i + 1], lo)))
    return out


def _mle_table(table: np.ndarray) -> np.ndarray:
    """``table`` as a contiguous uint64 vector of a power-of-two length ≥ 2."""
    table = np.ascontiguousarray(table, dtype=np.uint64)
    if table.ndim != 1 or len(table) < 2 or len(table) & (len(table) - 1):
        raise InputError(f"an MLE table has a power-of-two length ≥ 2, got {table.shape}")
    return table


def fold(table: np.ndarray, r) -> np.ndarray:
    """Fix the first (lowest-bit) variable of an MLE table to ``r``: length halves."""
    return _fold(_mle_table(table), np.uint64(r))


@kernel
def _fold_top(table, r):
    half = table.shape[0] // 2
    out = np.empty(half, dtype=np.uint64)
    for i in range(half):  # independent lanes: vectorised
        lo = table[i]
        out[i] = _addmod(lo, _mulmod_lanes(r, _submod(table[i + half], lo)))
    return out


def fold_top(table: np.ndarray, r) -> np.ndarray:
    """Fix the last (highest-bit) variable of an MLE table to ``r``: length halves."""
    return _fold_top(_mle_table(table), np.uint64(r))


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


@kernel
def _eq_table(point):
    m = point.shape[0]
    out = np.empty(1 << m, dtype=np.uint64)
    out[0] = np.uint64(1)
    size = 1
    for j in range(m):  # variable j is index bit j
        r = point[j]
        for i in range(size):
            v = out[i]
            hi = _mulmod_lanes(v, r)
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
