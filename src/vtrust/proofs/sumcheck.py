"""The sum-check protocol's pieces for the two claims a layered network needs, and the
Fiat–Shamir transcript.

* Product claim (matrix products, Thaler 2013): ``c = Σ_k f(k) g(k)`` over k ∈ {0,1}^m,
  for MLE tables f and g; each round polynomial has degree 2 (sent as its values at
  t = 0, 1, 2).
* Square claim (x² layers): ``c = Σ_x eq(r, x) z(x)²``; degree 3 (values at 0..3).

Each round fixes one variable (the product claim's lowest remaining one, the square
claim's highest: see :class:`SquareProver`): the prover sends ``g_i(t)`` for
t = 0..d, the verifier checks ``g_i(0) + g_i(1)`` against the running claim, picks
``r_i`` and continues with ``g_i(r_i)``; both sides fold their tables with ``r_i``.
"""

from __future__ import annotations

import functools
import hashlib

import numba
import numpy as np

from vtrust.proofs import field as F
from vtrust.proofs.field import _addmod, _lane_split, _lanes_total, _mulmod, _submod
from vtrust.proofs.field import _mulmod_lanes as _mul

_TWO = np.uint64(2)
_THREE = np.uint64(3)
_ZEROS4 = (np.uint64(0),) * 4


@numba.njit
def _product_round(f, g):
    """Values at t = 0, 1, 2 of Σ_rest f(t, rest) g(t, rest) (f, g folded on bit 0)."""
    e0 = np.uint64(0)
    e1 = np.uint64(0)
    e2 = np.uint64(0)
    for i in range(f.shape[0] // 2):
        f0, f1 = f[2 * i], f[2 * i + 1]
        g0, g1 = g[2 * i], g[2 * i + 1]
        e0 = _addmod(e0, _mulmod(f0, g0))
        e1 = _addmod(e1, _mulmod(f1, g1))
        f2 = _submod(_mulmod(_TWO, f1), f0)  # f(2) = 2 f(1) − f(0)
        g2 = _submod(_mulmod(_TWO, g1), g0)
        e2 = _addmod(e2, _mulmod(f2, g2))
    return e0, e1, e2


# The square kernels weight position k = i + len(e_lo)·row of the free variables by
# eq(q, k) = e_lo[i] · e_hi[row] (eq's product form): e_lo, the low variables' table, stays
# in the L1 cache, each row's sum is multiplied by its e_hi entry once, and no table of
# the size of z is ever read or written. Inner loops run over contiguous halves and keep
# their sums as split 32-bit halves, so they vectorise.
LOW_VARIABLES = 10  # e_lo's variables (2^10 entries: 8 KB)


@numba.njit(inline="always")
def _add_pair(e, z0, z1, acc):
    """The split sums ``acc`` (h(0) low, high; cross low, high) plus e·z0² and e·z0·z1."""
    u = _mul(e, z0)
    a, b = _lane_split(_mul(u, z0))
    c, d = _lane_split(_mul(u, z1))
    return acc[0] + a, acc[1] + b, acc[2] + c, acc[3] + d


@numba.njit(inline="always")
def _close_row(weight, acc, h0, cross):
    """h(0) and cross plus one row's split sums times the row's eq weight."""
    h0 = _addmod(h0, _mulmod(weight, _lanes_total(acc[0], acc[1])))
    return h0, _addmod(cross, _mulmod(weight, _lanes_total(acc[2], acc[3])))


@numba.njit
def _eq_weighted_squares(e_lo, e_hi, z):
    """Σ_k eq(k) z[k]² (h(1), in the rare rounds where it cannot be derived)."""
    width = e_lo.shape[0]
    total = np.uint64(0)
    for row in range(e_hi.shape[0]):
        low, high = _ZEROS4[:2]
        for i in range(width):
            v = z[row * width + i]
            lo, hi = _lane_split(_mul(e_lo[i], _mul(v, v)))
            low, high = low + lo, high + hi
        total = _addmod(total, _mulmod(e_hi[row], _lanes_total(low, high)))
    return total


@numba.njit
def _square_sums(z, r, e_lo, e_hi, z_out):
    """h(0) = Σ_k eq(k) y(k, 0)² and cross = Σ_k eq(k) y(k, 0) y(k, 1), the second
    argument of y being its top variable (y(k, t) = y[k + t·half]); h(2) follows as
    4 h(1) − 4 cross + h(0) since y(2) = 2 y(1) − y(0). Three products per pair.
    y = z if ``r`` is None; otherwise y is z with its top variable fixed to r, written
    to z_out in the same pass (a round's challenge and the next round's sums at once).
    e_lo, e_hi: the eq tables of y's free variables but its top one."""
    width, half = e_lo.shape[0], e_lo.shape[0] * e_hi.shape[0]
    h0 = cross = np.uint64(0)
    for row in range(e_hi.shape[0]):
        acc = _ZEROS4
        for i in range(width):
            k = row * width + i
            y0, y1 = z[k], z[k + half]
            if r is not None:  # resolved when numba compiles: two specialisations
                y0 = _addmod(y0, _mul(r, _submod(z[k + 2 * half], y0)))
                y1 = _addmod(y1, _mul(r, _submod(z[k + 3 * half], y1)))
                z_out[k] = y0
                z_out[k + half] = y1
            acc = _add_pair(e_lo[i], y0, y1, acc)
        h0, cross = _close_row(e_hi[row], acc, h0, cross)
    return h0, cross


@numba.njit
def _weighted_square_sums(w, z):
    """H(t) = Σ_k w(k, t) z(k, t)² for t = 0, 2, 3 (t the top variable of w and z, both
    multilinear: w(k, 2) = 2 w(k, 1) − w(k, 0), and so on)."""
    half = w.shape[0] // 2
    h0 = h2 = h3 = np.uint64(0)
    for k in range(half):
        w0, w1, z0, z1 = w[k], w[k + half], z[k], z[k + half]
        dw, dz = _submod(w1, w0), _submod(z1, z0)
        w2, z2 = _addmod(w1, dw), _addmod(z1, dz)
        w3, z3 = _addmod(w2, dw), _addmod(z2, dz)
        h0 = _addmod(h0, _mulmod(w0, _mulmod(z0, z0)))
        h2 = _addmod(h2, _mulmod(w2, _mulmod(z2, z2)))
        h3 = _addmod(h3, _mulmod(w3, _mulmod(z3, z3)))
    return h0, h2, h3


class SquareProver:
    """The prover's side of ``c = Σ_x A(x) z(x)²`` where x = (lo, hi) — index
    lo + 2^L·hi — and ``A(x) = eq(high_point, hi) · w(lo)`` for a table w of the L low
    variables. A square layer's claim is the case w = eq(q_lo, ·), high_point = q_hi; a
    linear layer over a square layer gives w = W̃(r_o, ·), high_point = r_b (the batch).

    One variable per round from the highest down, so every kernel reads contiguous
    halves. While high variables remain (the large tables), round j sends
    ``g(t) = scale · eq(q_j, t) · h(t)``, ``scale`` = eq of the high variables already
    bound and h of degree 2 a sum over the free ones; the prover keeps ``h_claim`` =
    claim / scale, so h(1) follows from (1 − q_j) h(0) + q_j h(1) = h_claim and h(2)
    from h(0), h(1) and one cross term — three products per pair, w stays in the L1
    cache, the high variables' eq table is rebuilt each round (it is small) and no eq
    table is folded. The low variables (tables of 2^L entries) go by plain degree-3
    rounds ``g(t) = scale · Σ w(t, ·) z(t, ·)²``, with g(1) from the claim.

    :meth:`message` gives the round's values at t = 0..3; :meth:`bind` fixes the variable
    to the verifier's challenge, folding z and summing the next round in one pass. The
    challenges r_1, r_2, … bind variables m−1, m−2, …: the bound point, lowest variable
    first, is the challenges reversed; :attr:`final` is then z there."""

    def __init__(
        self, z: np.ndarray, high_point: list[int], low_weights: np.ndarray, claim: int
    ) -> None:
        self.z = np.ascontiguousarray(z, dtype=np.uint64).ravel()
        self.w = np.ascontiguousarray(low_weights, dtype=np.uint64).ravel()
        self.point = [int(v) % F.P for v in high_point]
        if len(self.w) & (len(self.w) - 1) or len(self.z) != len(self.w) << len(self.point):
            raise ValueError("a square claim needs 2^L low weights and 2^(L + H) values")
        self.scale = 1
        self.h_claim = int(claim) % F.P
        self.inverses = F.batch_inverse(self.point)
        self.h = self._next_sums(None)

    @classmethod
    def for_eq(
        cls, z: np.ndarray, point: list[int], claim: int, *, low_variables: int = LOW_VARIABLES
    ) -> SquareProver:
        """The square layer's claim ``c = Σ_x eq(point, x) z(x)²``."""
        low = min(low_variables, len(point))
        return cls(z, list(point[low:]), F.eq_table(list(point[:low])), claim)

    @property
    def rounds(self) -> int:
        return (len(self.z) // len(self.w)).bit_length() - 1 + len(self.w).bit_length() - 1

    def _high_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(e_lo, e_hi) weighting the free variables but the current (highest) one."""
        return self.w, F.eq_table(self.point[:-1])

    def _next_sums(self, sums) -> list[int] | None:
        """The coming round's h (high phase: h(0..2)) or H (low phase: H(0..3)), from a
        fused kernel's ``sums`` (h(0), cross) if given; None when no round is left."""
        if self.point:
            tables = self._high_tables()
            h0, cross = (int(v) for v in (sums or _square_sums(self.z, None, *tables, None)))
            j = len(self.point) - 1
            if self.point[j] == 0:  # h(1) cannot be derived: sum it (one more pass)
                h1 = int(_eq_weighted_squares(*tables, self.z[len(self.z) // 2 :]))
            else:
                h1 = (self.h_claim - (1 - self.point[j]) * h0) * self.inverses[j] % F.P
            return [h0, h1, (4 * h1 - 4 * cross + h0) % F.P]
        if len(self.z) == 1:
            return None
        h0, h2, h3 = (int(v) for v in _weighted_square_sums(self.w, self.z))
        return [h0, (self.h_claim - h0) % F.P, h2, h3]

    def message(self) -> list[int]:
        """The round's values g(0), g(1), g(2), g(3)."""
        p = F.P
        if not self.point:
            return [self.scale * v % p for v in self.h]
        q = self.point[-1]
        h0, h1, h2 = self.h
        h = [h0, h1, h2, (h0 - 3 * h1 + 3 * h2) % p]  # h has degree 2
        return [self.scale * ((1 - q) + t * (2 * q - 1)) % p * h[t] % p for t in range(4)]

    def bind(self, r: int) -> None:
        """Fix the current variable to ``r`` and prepare the next round."""
        p = F.P
        r = int(r) % p
        self.h_claim = interpolate(self.h, r)
        if not self.point:  # low phase: fold w and z, then sum
            self.w, self.z = F.fold_top(self.w, r), F.fold_top(self.z, r)
            self.h = self._next_sums(None)
            return
        q = self.point.pop()
        self.scale = self.scale * ((1 - q) + r * (2 * q - 1)) % p
        if not self.point:  # the last high variable
            self.z = F.fold_top(self.z, r)
            self.h = self._next_sums(None)
            return
        tables = self._high_tables()
        z_out = np.empty(len(self.z) // 2, dtype=np.uint64)
        sums = _square_sums(self.z, np.uint64(r), *tables, z_out)
        self.z = z_out
        self.h = self._next_sums(sums)

    @property
    def final(self) -> int:
        """z at the bound point (after the last :meth:`bind`)."""
        return int(self.z[0])


def product_round(f: np.ndarray, g: np.ndarray) -> list[int]:
    return [int(v) for v in _product_round(f, g)]


@functools.cache
def _lagrange_denominators(n: int) -> tuple[int, ...]:
    """1 / Π_{j≠i} (i − j) for the nodes 0..n−1."""
    p = F.P
    out = []
    for i in range(n):
        den = 1
        for j in range(n):
            if j != i:
                den = den * (i - j) % p
        out.append(pow(den, p - 2, p))
    return tuple(out)


def interpolate(values: list[int], r: int) -> int:
    """The polynomial of degree < len(values) through (t, values[t]), t = 0, 1, …, at r."""
    p = F.P
    n = len(values)
    r = int(r)
    total = 0
    for i, (y, inv_den) in enumerate(zip(values, _lagrange_denominators(n), strict=True)):
        num = 1
        for j in range(n):
            if j != i:
                num = num * (r - j) % p
        total = (total + y * num * inv_den) % p
    return total


def eq_value(a: list[int], b: list[int]) -> int:
    """eq(a, b) = Π (a_j b_j + (1 − a_j)(1 − b_j))."""
    p = F.P
    out = 1
    for x, y in zip(a, b, strict=True):
        out = out * ((x * y + (1 - x) * (1 - y)) % p) % p
    return out


class Transcript:
    """Fiat–Shamir: a SHA-256 chain over canonical bytes. Every absorbed item is framed
    by a label and its length; challenges are drawn by hashing the running state with a
    counter and rejecting values ≥ p (no modular bias)."""

    def __init__(self, domain: bytes) -> None:
        self.state = hashlib.sha256(b"vtrust-transcript/2\x00" + domain).digest()

    def absorb(self, label: str, values: list[int] | bytes) -> None:
        data = (
            values
            if isinstance(values, bytes)
            else np.asarray(values, dtype=np.uint64).astype("<u8").tobytes()
        )
        tag = label.encode()
        self.state = hashlib.sha256(
            self.state + len(tag).to_bytes(2, "little") + tag + len(data).to_bytes(8, "little")
            + data
        ).digest()  # fmt: skip

    def draw(self) -> int:
        counter = 0
        while True:
            digest = hashlib.sha256(self.state + b"challenge" + counter.to_bytes(4, "little"))
            value = int.from_bytes(digest.digest()[:8], "little") & ((1 << 61) - 1)
            counter += 1
            if value < F.P:
                self.state = hashlib.sha256(self.state + b"next" + digest.digest()).digest()
                return value
