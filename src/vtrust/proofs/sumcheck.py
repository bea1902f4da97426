"""The sum-check protocol's pieces for the two claims a layered network needs, and the
Fiat–Shamir transcript.

* Product claim (matrix products, Thaler 2013): ``c = Σ_k f(k) g(k)`` over k ∈ {0,1}^m,
  for MLE tables f and g; each round polynomial has degree 2 (sent as its values at
  t = 0, 1, 2).
* Square claim (x² layers): ``c = Σ_x eq(r, x) z(x)²``; degree 3 (values at 0..3).

Round i fixes the lowest remaining variable: the prover sends ``g_i(t)`` for
t = 0..d, the verifier checks ``g_i(0) + g_i(1)`` against the running claim, picks
``r_i`` and continues with ``g_i(r_i)``; both sides fold their tables with ``r_i``.
"""

from __future__ import annotations

import functools
import hashlib

import numba
import numpy as np

from vtrust.proofs import field as F
from vtrust.proofs.field import _addmod, _mulmod, _submod

_TWO = np.uint64(2)
_THREE = np.uint64(3)


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


@numba.njit
def _square_sums(e, z, with_h1):
    """h(t) = Σ_k e[k] z(t, k)² for t = 0, 2 (and 1 if ``with_h1``; else 0), with z
    folded on bit 0 and e the eq table of the remaining variables."""
    h0 = np.uint64(0)
    h1 = np.uint64(0)
    h2 = np.uint64(0)
    for k in range(e.shape[0]):
        z0, z1 = z[2 * k], z[2 * k + 1]
        z2 = _submod(_addmod(z1, z1), z0)
        ek = e[k]
        h0 = _addmod(h0, _mulmod(ek, _mulmod(z0, z0)))
        h2 = _addmod(h2, _mulmod(ek, _mulmod(z2, z2)))
        if with_h1:
            h1 = _addmod(h1, _mulmod(ek, _mulmod(z1, z1)))
    return h0, h1, h2


@numba.njit
def _square_sums_known(e, z, squares, with_h1):
    """Like :func:`_square_sums` when the squares z² are already known (the layer's
    output): h(0), h(1) if ``with_h1``, and the cross term Σ_k e[k] z(0,k) z(1,k), from
    which h(2) = 4 h(1) − 4 cross + h(0). Three products per pair instead of four."""
    h0 = np.uint64(0)
    h1 = np.uint64(0)
    cross = np.uint64(0)
    for k in range(e.shape[0]):
        ek = e[k]
        h0 = _addmod(h0, _mulmod(ek, squares[2 * k]))
        cross = _addmod(cross, _mulmod(ek, _mulmod(z[2 * k], z[2 * k + 1])))
        if with_h1:
            h1 = _addmod(h1, _mulmod(ek, squares[2 * k + 1]))
    return h0, h1, cross


@numba.njit
def _fold_square_sums(z, r, e, z_out, e_out, with_h1):
    """One pass for a square round's challenge and the next round's sums: z folded with
    r into z_out, e's pair sums into e_out (the eq table one variable shorter, since
    eq(q, 0) + eq(q, 1) = 1), and :func:`_square_sums` of the results."""
    h0 = np.uint64(0)
    h1 = np.uint64(0)
    h2 = np.uint64(0)
    for k in range(e_out.shape[0]):
        lo, hi = z[4 * k], z[4 * k + 2]
        z0 = _addmod(lo, _mulmod(r, _submod(z[4 * k + 1], lo)))
        z1 = _addmod(hi, _mulmod(r, _submod(z[4 * k + 3], hi)))
        z_out[2 * k] = z0
        z_out[2 * k + 1] = z1
        ek = _addmod(e[2 * k], e[2 * k + 1])
        e_out[k] = ek
        z2 = _submod(_addmod(z1, z1), z0)
        h0 = _addmod(h0, _mulmod(ek, _mulmod(z0, z0)))
        h2 = _addmod(h2, _mulmod(ek, _mulmod(z2, z2)))
        if with_h1:
            h1 = _addmod(h1, _mulmod(ek, _mulmod(z1, z1)))
    return h0, h1, h2


class SquareProver:
    """The prover's side of ``c = Σ_x eq(q, x) z(x)²``, one variable per round, in eq's
    product form: round i's polynomial is ``g(t) = scale · eq(q_i, t) · h(t)`` with
    ``scale`` = eq of the variables already bound and h of degree 2 a sum over the free
    ones. The prover keeps ``h_claim`` = h_{i−1}(r_{i−1}) = claim / scale (at the start,
    c), so h(1) follows from h(0): (1 − q_i) h(0) + q_i h(1) = h_claim; only h(0) and
    h(2) are summed — two squares per pair — and no eq table is folded.

    :meth:`message` gives the round's values at t = 0..3; :meth:`bind` fixes the variable
    to the verifier's challenge, folding z, shortening the eq table by pair sums and
    summing the next round in one pass. ``squares`` (z², if known) saves a product per
    pair in the first round."""

    def __init__(
        self, z: np.ndarray, point: list[int], claim: int, squares: np.ndarray | None = None
    ) -> None:
        self.z = np.ascontiguousarray(z, dtype=np.uint64).ravel()
        self.point = [int(v) % F.P for v in point]
        if len(self.z) != 1 << len(self.point):
            raise ValueError("a square claim needs a table of 2^len(point) values")
        self.scale = 1
        self.h_claim = int(claim) % F.P
        if not self.point:  # a single value: no rounds
            return
        self.e = F.eq_table(self.point[1:])
        with_h1 = self.point[0] == 0
        if squares is None:
            self.h = self._complete(_square_sums(self.e, self.z, with_h1))
        else:
            squares = np.ascontiguousarray(squares, dtype=np.uint64).ravel()
            h0, h1, cross = (int(v) for v in _square_sums_known(self.e, self.z, squares, with_h1))
            h1 = h1 if with_h1 else self._h1(h0)
            self.h = [h0, h1, (4 * h1 - 4 * cross + h0) % F.P]

    def _h1(self, h0: int) -> int:
        q = self.point[0]
        return (self.h_claim - (1 - q) * h0) * pow(q, F.P - 2, F.P) % F.P

    def _complete(self, sums) -> list[int]:
        h0, h1, h2 = (int(v) for v in sums)
        return [h0, h1 if self.point[0] == 0 else self._h1(h0), h2]

    def message(self) -> list[int]:
        """The round's values g(0), g(1), g(2), g(3)."""
        p, q = F.P, self.point[0]
        h0, h1, h2 = self.h
        h = [h0, h1, h2, (h0 - 3 * h1 + 3 * h2) % p]  # h has degree 2
        return [self.scale * ((1 - q) + t * (2 * q - 1)) % p * h[t] % p for t in range(4)]

    def bind(self, r: int) -> None:
        """Fix the current variable to ``r`` and prepare the next round."""
        p = F.P
        r = int(r) % p
        q = self.point.pop(0)
        self.scale = self.scale * ((1 - q) + r * (2 * q - 1)) % p
        self.h_claim = interpolate(self.h, r)
        if len(self.z) == 2:
            self.z = F.fold(self.z, r)
            return
        pairs = len(self.z) // 4
        z_out = np.empty(2 * pairs, dtype=np.uint64)
        e_out = np.empty(pairs, dtype=np.uint64)
        sums = _fold_square_sums(self.z, np.uint64(r), self.e, z_out, e_out, self.point[0] == 0)
        self.z, self.e = z_out, e_out
        self.h = self._complete(sums)

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
