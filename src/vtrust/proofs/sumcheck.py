"""The sum-check protocol's pieces for the two claims a layered network needs, and the
Fiat–Shamir transcript.

* Product claim (matrix products, Thaler 2013): ``c = Σ_k f(k) g(k)`` over k ∈ {0,1}^m,
  for MLE tables f and g; each round polynomial has degree 2 (sent as its values at
  t = 0, 1, 2).
* Square claim (x² layers): ``c = Σ_x eq(r, x) z(x)²``; degree 3 (values at 0..3).

Tables (layer values, weights) are in F_p; challenges, and so claims, folded tables and
round values, are in F_{p^2} (:mod:`vtrust.proofs.ext`).

Each round fixes one variable (the product claim's lowest remaining one, the square
claim's highest: see :class:`SquareProver`): the prover sends ``g_i(t)`` for
t = 0..d, the verifier checks ``g_i(0) + g_i(1)`` against the running claim, picks
``r_i`` and continues with ``g_i(r_i)``; both sides fold their tables with ``r_i``.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np

from vtrust.proofs import ext as X
from vtrust.proofs import field as F
from vtrust.proofs._jit import kernel
from vtrust.proofs.ext import _lmul
from vtrust.proofs.ext import _mul as _xmul
from vtrust.proofs.field import _addmod, _lane_split, _lanes_total, _submod
from vtrust.proofs.field import _mulmod_lanes as _lane

# The square kernels weight position k = i + len(e_lo)·row of the free variables by
# eq(q, k) = e_lo[i] · e_hi[row] (eq's product form): e_lo, the low variables' table, stays
# in the L1 cache, each row's sum is multiplied by its e_hi entry once, and no table of
# the size of z is ever read or written. Values and weights are in F_{p^2} (pairs of
# arrays); a table still in F_p (before the first challenge is bound) passes None for its
# imaginary half, and the kernels, compiled once per case, skip that work.
LOW_VARIABLES = 10  # e_lo's variables (2^10 entries: 16 KB)


@numba.njit(inline="always")
def _at(re, im, k):
    """Element k of an extension table (im None: a base table)."""
    if im is None:
        return re[k], np.uint64(0)
    return re[k], im[k]


@numba.njit(inline="always")
def _folded(z_re, z_im, lo, hi, r_re, r_im):
    """z(lo) + r·(z(hi) − z(lo))."""
    ar, ai = _at(z_re, z_im, lo)
    br, bi = _at(z_re, z_im, hi)
    dr = _submod(br, ar)
    if z_im is None:
        return _addmod(ar, _lane(r_re, dr)), _lane(r_im, dr)
    mr, mi = _lmul(r_re, r_im, dr, _submod(bi, ai))
    return _addmod(ar, mr), _addmod(ai, mi)


@numba.njit(inline="always")
def _add4(acc, a, b, c, d):
    """The split sums ``acc`` (eight: low and high 32-bit halves of four sums) plus the
    four values a, b, c, d < 2^64 — plain additions, so the loop vectorises."""
    a0, a1 = _lane_split(a)
    b0, b1 = _lane_split(b)
    c0, c1 = _lane_split(c)
    d0, d1 = _lane_split(d)
    return (acc[0] + a0, acc[1] + a1, acc[2] + b0, acc[3] + b1,
            acc[4] + c0, acc[5] + c1, acc[6] + d0, acc[7] + d1)  # fmt: skip


_ZEROS8 = (np.uint64(0),) * 8


@kernel
def _square_sums(z_re, z_im, r_re, r_im, e_lo_re, e_lo_im, e_hi_re, e_hi_im, out_re, out_im):
    """h(0) = Σ_k eq(k) y(k, 0)² and cross = Σ_k eq(k) y(k, 0) y(k, 1), the second
    argument of y being its top variable (y(k, t) = y[k + t·half]); h(2) follows as
    4 h(1) − 4 cross + h(0) since y(2) = 2 y(1) − y(0). y = z if ``r_re`` is None;
    otherwise y is z with its top variable fixed to r, written to ``out`` in the same
    pass (a round's challenge and the next round's sums at once). e_lo, e_hi: the eq
    tables of y's free variables but its top one. Both None checks are resolved when
    numba compiles: a base table without a fold (the first round) costs six products
    per pair, an extension table nine plus six for the fold. Inner loops keep their
    sums as split 32-bit halves, so they vectorise. Returns (h0 re, im, cross re, im)."""
    width, half = e_lo_re.shape[0], e_lo_re.shape[0] * e_hi_re.shape[0]
    h0r = h0i = cr = ci = np.uint64(0)
    for row in range(e_hi_re.shape[0]):
        acc = _ZEROS8
        for i in range(width):
            k = row * width + i
            er, ei = e_lo_re[i], e_lo_im[i]
            if r_re is None:
                if z_im is None:  # base values: e·y0 and its products with y0, y1
                    y0, y1 = z_re[k], z_re[k + half]
                    ur, ui = _lane(er, y0), _lane(ei, y0)
                    acc = _add4(acc, _lane(ur, y0), _lane(ui, y0), _lane(ur, y1), _lane(ui, y1))
                    continue
                y0r, y0i = z_re[k], z_im[k]
                y1r, y1i = z_re[k + half], z_im[k + half]
            else:
                y0r, y0i = _folded(z_re, z_im, k, k + 2 * half, r_re, r_im)
                y1r, y1i = _folded(z_re, z_im, k + half, k + 3 * half, r_re, r_im)
                out_re[k], out_im[k] = y0r, y0i
                out_re[k + half], out_im[k + half] = y1r, y1i
            ur, ui = _lmul(er, ei, y0r, y0i)
            sr, si = _lmul(ur, ui, y0r, y0i)
            tr, ti = _lmul(ur, ui, y1r, y1i)
            acc = _add4(acc, sr, si, tr, ti)
        ar, ai = _lanes_total(acc[0], acc[1]), _lanes_total(acc[2], acc[3])
        br, bi = _lanes_total(acc[4], acc[5]), _lanes_total(acc[6], acc[7])
        sr, si = _xmul(e_hi_re[row], e_hi_im[row], ar, ai)
        tr, ti = _xmul(e_hi_re[row], e_hi_im[row], br, bi)
        h0r, h0i = _addmod(h0r, sr), _addmod(h0i, si)
        cr, ci = _addmod(cr, tr), _addmod(ci, ti)
    return h0r, h0i, cr, ci


@kernel
def _weighted_square_sums(w_re, w_im, z_re, z_im):
    """H(t) = Σ_k w(k, t) z(k, t)² for t = 0, 2, 3 (t the top variable of w and z, both
    multilinear: w(k, 2) = 2 w(k, 1) − w(k, 0), and so on), as six integers."""
    half = w_re.shape[0] // 2
    out = np.zeros(6, dtype=np.uint64)
    for k in range(half):
        w0r, w0i = w_re[k], w_im[k]
        w1r, w1i = w_re[k + half], w_im[k + half]
        z0r, z0i = _at(z_re, z_im, k)
        z1r, z1i = _at(z_re, z_im, k + half)
        dwr, dwi = _submod(w1r, w0r), _submod(w1i, w0i)
        dzr, dzi = _submod(z1r, z0r), _submod(z1i, z0i)
        w2r, w2i, z2r, z2i = _addmod(w1r, dwr), _addmod(w1i, dwi), _addmod(z1r, dzr), _addmod(
            z1i, dzi)  # fmt: skip
        w3r, w3i, z3r, z3i = _addmod(w2r, dwr), _addmod(w2i, dwi), _addmod(z2r, dzr), _addmod(
            z2i, dzi)  # fmt: skip
        sr, si = _xmul(z0r, z0i, z0r, z0i)
        sr, si = _xmul(w0r, w0i, sr, si)
        out[0], out[1] = _addmod(out[0], sr), _addmod(out[1], si)
        sr, si = _xmul(z2r, z2i, z2r, z2i)
        sr, si = _xmul(w2r, w2i, sr, si)
        out[2], out[3] = _addmod(out[2], sr), _addmod(out[3], si)
        sr, si = _xmul(z3r, z3i, z3r, z3i)
        sr, si = _xmul(w3r, w3i, sr, si)
        out[4], out[5] = _addmod(out[4], sr), _addmod(out[5], si)
    return out


class SquareProver:
    """The prover's side of ``c = Σ_x A(x) z(x)²`` where x = (lo, hi) — index
    lo + 2^L·hi — and ``A(x) = eq(high_point, hi) · w(lo)`` for a table w of the L low
    variables. A square layer's claim is the case w = eq(q_lo, ·), high_point = q_hi; a
    linear layer over a square layer gives w = W̃(r_o, ·), high_point = r_b (the batch).
    ``z`` is a base-field table; points, weights, claims and challenges are in F_{p^2}.

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
        self, z: np.ndarray, high_point: list[X.Ext], low_weights: X.Pair, claim: X.Ext
    ) -> None:
        self.z: tuple[np.ndarray, np.ndarray | None] = (
            np.ascontiguousarray(z, dtype=np.uint64).ravel(), None)  # fmt: skip
        self.w = tuple(np.ascontiguousarray(t, dtype=np.uint64).ravel() for t in low_weights)
        self.point = [(int(v[0]) % F.P, int(v[1]) % F.P) for v in high_point]
        n_low, n_z = len(self.w[0]), len(self.z[0])
        if n_low & (n_low - 1) or n_z != n_low << len(self.point):
            raise ValueError("a square claim needs 2^L low weights and 2^(L + H) values")
        self.scale = X.ONE
        self.h_claim = (int(claim[0]) % F.P, int(claim[1]) % F.P)
        self.inverses = X.batch_inverse(self.point)
        self.h = self._next_sums(None)

    @classmethod
    def for_eq(
        cls, z: np.ndarray, point: list[X.Ext], claim: X.Ext, *, low_variables: int = LOW_VARIABLES
    ) -> SquareProver:
        """The square layer's claim ``c = Σ_x eq(point, x) z(x)²``."""
        low = min(low_variables, len(point))
        return cls(z, list(point[low:]), X.eq_table(list(point[:low])), claim)

    @property
    def rounds(self) -> int:
        return (len(self.z[0]) // len(self.w[0])).bit_length() - 1 + len(self.w[0]).bit_length() - 1

    def _high_tables(self):
        """(e_lo, e_hi) weighting the free variables but the current (highest) one."""
        return (*self.w, *X.eq_table(self.point[:-1]))

    def _next_sums(self, sums) -> list[X.Ext] | None:
        """The coming round's h (high phase: h(0..2)) or H (low phase: H(0..3)), from a
        fused kernel's ``sums`` (h(0), cross) if given; None when no round is left."""
        z_re, z_im = self.z
        if self.point:
            tables = self._high_tables()
            if sums is None:
                sums = _square_sums(z_re, z_im, None, None, *tables, None, None)
            h0, cross = (int(sums[0]), int(sums[1])), (int(sums[2]), int(sums[3]))
            j = len(self.point) - 1
            q = self.point[j]
            if q == X.ZERO:  # h(1) cannot be derived: sum the top half (one more pass)
                half = len(z_re) // 2
                top = tuple(None if t is None else np.concatenate([t[half:], t[half:]])
                            for t in self.z)  # fmt: skip
                s1 = _square_sums(top[0], top[1], None, None, *tables, None, None)
                h1 = (int(s1[0]), int(s1[1]))
            else:
                h1 = X.mul(X.sub(self.h_claim, X.mul(X.sub(X.ONE, q), h0)), self.inverses[j])
            h2 = X.add(X.sub(X.scale(h1, 4), X.scale(cross, 4)), h0)
            return [h0, h1, h2]
        if len(z_re) == 1:
            return None
        out = X.unflat(_weighted_square_sums(*self.w, z_re, z_im).tolist())
        h0, h2, h3 = out
        return [h0, X.sub(self.h_claim, h0), h2, h3]

    def message(self) -> list[X.Ext]:
        """The round's values g(0), g(1), g(2), g(3)."""
        if not self.point:
            return [X.mul(self.scale, v) for v in self.h]
        q = self.point[-1]
        h0, h1, h2 = self.h
        h3 = X.add(X.sub(h0, X.scale(h1, 3)), X.scale(h2, 3))  # h has degree 2
        h = [h0, h1, h2, h3]
        return [X.mul(X.mul(self.scale, X.eq_factor(q, X.lift(t))), h[t]) for t in range(4)]

    def bind(self, r: X.Ext) -> None:
        """Fix the current variable to ``r`` and prepare the next round."""
        r = (int(r[0]) % F.P, int(r[1]) % F.P)
        self.h_claim = X.interpolate(self.h, r)
        if not self.point:  # low phase: fold w and z, then sum
            self.w = X.fold(self.w, r, top=True)
            self.z = X.fold(self.z if self.z[1] is not None else self.z[0], r, top=True)
            self.h = self._next_sums(None)
            return
        q = self.point.pop()
        self.scale = X.mul(self.scale, X.eq_factor(q, r))
        if not self.point:  # the last high variable
            self.z = X.fold(self.z if self.z[1] is not None else self.z[0], r, top=True)
            self.h = self._next_sums(None)
            return
        tables = self._high_tables()
        half = len(self.z[0]) // 2
        out = np.empty(half, dtype=np.uint64), np.empty(half, dtype=np.uint64)
        z_re, z_im = self.z
        sums = _square_sums(z_re, z_im, np.uint64(r[0]), np.uint64(r[1]), *tables, *out)
        self.z = out
        self.h = self._next_sums(sums)

    @property
    def final(self) -> X.Ext:
        """z at the bound point (after the last :meth:`bind`)."""
        im = self.z[1]
        return (int(self.z[0][0]), 0 if im is None else int(im[0]))


def product_round(f: X.Pair, g: X.Pair) -> list[X.Ext]:
    return X.product_round(f, g)


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

    def draw_ext(self) -> X.Ext:
        """A challenge in F_{p^2}: two base draws."""
        return (self.draw(), self.draw())

    def draw(self) -> int:
        counter = 0
        while True:
            digest = hashlib.sha256(self.state + b"challenge" + counter.to_bytes(4, "little"))
            value = int.from_bytes(digest.digest()[:8], "little") & ((1 << 61) - 1)
            counter += 1
            if value < F.P:
                self.state = hashlib.sha256(self.state + b"next" + digest.digest()).digest()
                return value
