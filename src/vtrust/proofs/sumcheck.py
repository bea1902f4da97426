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


def square_round_factored(
    e_rest: np.ndarray, z: np.ndarray, q: int, scale: int, claim: int | None = None
) -> list[int]:
    """The square round's values at t = 0..3 using eq's product form:
    ``g(t) = scale · eq(q, t) · h(t)``, where ``scale`` is eq of the variables already
    bound and ``e_rest`` the eq table of the ones still free after this one. Needs at
    most three squares per pair and no folding of an eq table (the plain form needs
    eight products). With the running ``claim`` = g(0) + g(1), h(1) follows from it and
    only two squares per pair are left."""
    p = F.P
    derive = claim is not None and q % p != 0 and scale % p != 0
    h0, h1, h2 = (int(v) for v in _square_sums(e_rest, z, not derive))
    if derive:
        rest = (claim * pow(scale, p - 2, p) - (1 - q) * h0) % p  # = q · h(1)
        h1 = rest * pow(q, p - 2, p) % p
    h = [h0, h1, h2, (h0 - 3 * h1 + 3 * h2) % p]  # h has degree 2
    return [scale * ((1 - q) + t * (2 * q - 1)) % p * h[t] % p for t in range(4)]


def product_round(f: np.ndarray, g: np.ndarray) -> list[int]:
    return [int(v) for v in _product_round(f, g)]


def interpolate(values: list[int], r: int) -> int:
    """The polynomial of degree < len(values) through (t, values[t]), t = 0, 1, …, at r."""
    p = F.P
    n = len(values)
    total = 0
    for i, y in enumerate(values):
        num, den = 1, 1
        for j in range(n):
            if j != i:
                num = num * (r - j) % p
                den = den * (i - j) % p
        total = (total + y * num * pow(den, p - 2, p)) % p
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
        self.state = hashlib.sha256(b"vtrust-transcript/1\x00" + domain).digest()

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
